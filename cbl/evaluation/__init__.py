"""cbl.evaluation: what an evaluation computes from a model's test logits, independent of how it was trained.

    metrics.py       top-k error, per-class accuracy, many / medium / few-shot accuracy (n > 100 / 20..100 / < 20)
    calibration.py   ECE over 15 equal-width confidence bins and NLL, with each head's own class probabilities
    multilabel.py    average precision per class, mAP, and mAP over the head / medium / tail classes of a
                     multi-label long-tailed benchmark (Wu et al., ECCV 2020)
"""
