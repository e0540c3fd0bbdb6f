"""Labelled data: manifests, splits and folds (`manifest`), the decoded-signal store (`signals`), dataset
recipes
(`recipes` + `download`, recipes as data in `datasets/`) and the espeak-ng spoken digits (`synth`)."""
