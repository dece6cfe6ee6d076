"""cbl.evaluation: how a trained model is scored on the test set.

multilabel   average precision per class, mAP, and mAP over the head / medium / tail classes of a multi-label
             long-tailed benchmark (Wu et al., ECCV 2020)
"""
