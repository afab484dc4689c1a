"""What the method is fed: tasks (images and labels), encoders, and their features.

``data`` (the task registry), ``task`` (the ``Task`` record: images, labels, a content id),
``bundle`` (the shipped ``data/mini/`` bundle), ``preprocessing`` (input pipelines and training
augmentation), ``eval_transforms`` (a timm or torchvision model's own eval transform), ``encoders`` (the encoder registry, ``load_encoder``), ``encoder_base`` (the
``Encoder`` record, what every loader shares), ``torchvision_encoders`` (``torchvision:<model>``
names), ``cnn_zoo`` (the in-kit CNNs, their shipped weights loaded), ``zoo_build`` (the shipped
weights built, verified, compared with a rebuild), ``features`` (batched, cached
extraction), ``feature_space`` (2-D projections, class separability), ``dryrun`` (synthetic
stand-ins of the paper's datasets), ``photos`` (the real-photo check of ImageNet weights).

Imports only :mod:`taskrel_utils.core`.
"""
__all__ = [
    "data", "task", "bundle", "preprocessing", "eval_transforms", "encoders", "encoder_base", "torchvision_encoders", "cnn_zoo",
    "zoo_build", "features", "feature_space", "dryrun", "photos",
]
