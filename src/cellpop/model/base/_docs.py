"""Shared parameter docs of cellpop's public API (docrep, as scvi-tools does)."""

from docrep import DocstringProcessor

doc = DocstringProcessor(
    param_adata="""adata
    AnnData registered with :meth:`setup_anndata`; ``None``: the training AnnData. Another
    AnnData (a query) is read, never modified: expression genes are matched to the model's by
    name and reordered (missing genes zero-filled with a warning up to
    :data:`cellpop.data.MAX_MISSING_GENE_FRACTION`, an error above), and donors, batches or
    labels unseen in training extend the registry's categories.""",
    param_sample_key="""sample_key
    ``adata.obs`` column of sample (donor) ids; a missing value is an error.""",
    param_layer="""layer
    ``adata.layers`` key of the input (``None``: ``adata.X``).""",
    param_batch_key="""batch_key
    ``adata.obs`` column of the technical batch (study); a missing value is an error.""",
    param_labels_key="""labels_key
    ``adata.obs`` column of cell-type labels (used for evaluation only unless stated).""",
    param_indices="""indices
    Cell positions in ``adata`` to use (default: all).""",
    param_batch_size_inference="""batch_size
    Cells per forward pass (default 1024).""",
    param_key_added_obsm="""key_added
    When given, the array is also written to ``adata.obsm[key_added]`` (nothing else is
    written; needs ``indices=None``).""",
    param_key_added_uns="""key_added
    When given, the DataFrame is also written to ``adata.uns[key_added]`` (nothing else is
    written).""",
    param_train_common="""max_epochs
    Epochs (``None``: the model's default budget, given below). ``< 1`` raises ``ValueError``.
accelerator, devices
    Lightning device selection (``"auto"``: the GPU when there is one).
batch_size
    Items per training step (``None``: the model's default, given below).
train_size
    Fraction of the data (cells, or samples for sample-level models) used for training; the
    rest is the validation set of ``validation_loss``. Seeded by ``scvi.settings.seed``.
early_stopping
    Stop when ``validation_loss`` has not improved for ``early_stopping_patience`` epochs
    (switched off, with a log message, when there is no validation set).
early_stopping_patience
    Patience in epochs (``None``: the model's default).
load_to_device
    Keep the input matrix on the training device (``"auto"``: when it takes less than half of
    the free device memory; always on CPU).
plan_kwargs
    Options of :class:`cellpop.train.TrainingPlan` (``lr``, ``weight_decay``, ``scheduler``,
    ...) overriding the model's defaults.
datasplitter_kwargs
    Options of the model's data module (e.g. ``split_by_sample=True`` for cell models).
**trainer_kwargs
    Passed to :class:`scvi.train.Trainer` (``benchmark=False`` and
    ``check_val_every_n_epoch=1`` by default). ``strategy="ddp"`` (or ``"ddp_spawn"``,
    ``"ddp_fork"``, ``"ddp_notebook"``) with ``devices=N`` trains data-parallel on ``N``
    devices: ``batch_size`` is per device, the data are sharded across ranks, the losses see
    the global minibatch, unused parameters are allowed (``find_unused_parameters=True``) and
    scvi-tools switches early stopping off (see ``docs/scale.md``).""",
    train_notes="""Training always runs in train mode and every run goes through scvi-tools'
``TrainRunner``; ``history`` accumulates over calls (a second ``train()`` continues from the
current weights and appends its epochs). An interrupted or failed run keeps the weights of its
last step, leaves the module in eval mode and ``is_trained`` as it was before the run.""",
)
