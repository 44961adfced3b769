"""The ``maskdetect`` command line: a thin caller of the package."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

from tqdm.auto import tqdm

from . import serve as serve_module
from .core.constants import ANNOTATED_MAX_SIDE, CLASSES, DETECTOR, METRICS_FILE, MODEL_FILE, SERVED_FILE
from .core.crowd import CrowdAnalyzer, annotate
from .core.faces import YuNetDetector
from .core.fetch import FetchError, HostRefused
from .core.files import atomic_path, write_csv
from .core.images import ImageDecodeError, decode_image
from .core.inference import ModelError, Predictor
from .core.video import VideoError, VideoLimits, open_video
from .core.weights import WeightsError, obtain_detector_weights
from .core.zones import SYNTAX as ZONE_SYNTAX, Polygon, ZoneError, Zones, parse_polygon
from .data import boxes, layout, maskwear, pinned, realfaces, source, split
from .data.source import DataError
from .settings import Settings
from .training.export import ExportError, export_model
from .training.scenes import ScenesError, evaluate_scenes


def _print_counts(counts: dict[str, dict[str, int]]) -> None:
    print(f"{'split':<12}" + "".join(f"{c:>14}" for c in next(iter(counts.values()))) + f"{'total':>8}")
    for name, by_class in counts.items():
        print(f"{name:<12}" + "".join(f"{n:>14}" for n in by_class.values()) + f"{sum(by_class.values()):>8}")


def command_data(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    progress = not args.quiet
    if args.set == "maskwear" and args.action not in ("split", "faces"):
        raise DataError("--set maskwear goes with 'split' or 'faces'; `maskdetect data` alone lays out every set")
    if args.action == "split" and args.set == "maskwear":
        rows = maskwear.compute_maskwear_splits()
        path = maskwear.write_maskwear_splits(rows, args.out)
        print(f"wrote {path}: {len(rows)} files in {len({r['group'] for r in rows})} groups")
        _print_counts(maskwear.split_counts(rows))
    elif args.action == "faces" and args.set == "maskwear":
        found = maskwear.compute_maskwear_faces(args.source, progress=progress)
        path = maskwear.write_maskwear_faces(found, args.out)
        print(f"wrote {path}: a face in {sum(r['xmin'] != '' for r in found)} of {len(found)} files")
    elif args.action == "split":
        folder = source.acquire_source(args.source, progress=progress)
        rows = split.compute_splits(folder, progress=progress)
        path = split.write_splits(rows, args.out)
        groups = len({r["group"] for r in rows})
        print(f"wrote {path}: {len(rows)} distinct files in {groups} groups")
        _print_counts(split.split_counts(rows))
    elif args.action == "faces":
        folder = source.acquire_source(args.source, progress=progress)
        found = boxes.compute_faces(folder, split.read_splits(), progress=progress)
        path = boxes.write_faces(found, args.out)
        print(f"wrote {path}: a face in {sum(r['xmin'] != '' for r in found)} of {len(found)} files")
    elif args.action == "manifest":
        if args.source is None:
            raise DataError("`maskdetect data manifest` needs --source DIR (the folder to record)")
        entries = source.write_manifest(args.source, args.out)
        print(f"wrote {args.out or source.MANIFEST}: {len(entries)} files")
    else:
        target, rows, changed = layout.prepare_data(args.source, args.strategy, progress=progress)
        state = "materialised" if changed else "already up to date:"
        print(f"{state} {target}/{{{','.join(split.SPLITS)}}}/{{{','.join(CLASSES)}}}")
        _print_counts(split.split_counts(rows))
        if args.strategy == "groups":  # the pinned training sets too, unless they can be neither found nor downloaded
            for dataset, what in ((realfaces.REALFACES, "real face crops"), (maskwear.MASKWEAR, "masks worn well, badly, or not")):
                try:
                    target = pinned.prepare(dataset, progress=progress)
                except pinned.SourceUnreachable as error:
                    print(f"maskdetect: {dataset.name} skipped: {error}", file=sys.stderr)
                else:
                    print(f"{dataset.name} ({what}, verified): {target}/{{{','.join(dataset.splits)}}}/{{{','.join(dataset.classes)}}}")
                    _print_counts(pinned.split_counts(dataset, pinned.read_splits(dataset)))
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def command_weights(args: argparse.Namespace) -> int:
    """Print the path of the verified face-detector weights."""
    settings = Settings.from_env()
    print(obtain_detector_weights(settings.detector_source, settings.weights_dir, settings.detector_url, progress=not args.quiet))
    return 0


def command_serve(args: argparse.Namespace) -> int:
    try:
        return serve_module.serve(host=args.host, port=args.port, proxy=args.proxy)
    except (serve_module.ServeError, ValueError) as error:
        print(f"maskdetect: error: {error}", file=sys.stderr)
        return 1


def command_train(args: argparse.Namespace) -> int:
    from .training import train  # scikit-learn, and TensorFlow once it builds the model

    overrides = {k: v for k, v in (("model", args.model), ("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    cfg = dataclasses.replace(train.DEPLOYED, **overrides)
    report = train.train_and_save(cfg, out_dir=args.out, progress=not args.quiet)
    out = args.out or Settings.from_env().deployment_dir
    print(json.dumps({"model": report["model"], "metrics": report["metrics"]}, indent=2))
    print(f"wrote {out / MODEL_FILE} ({report['model_bytes'] / 1e6:.1f} MB) and {out / METRICS_FILE}")
    print(f"trained in {report['training_seconds']:.0f} s ({report['epochs_run']} epochs, kept epoch {report['kept_epoch']})")
    return 0


def command_predict(args: argparse.Namespace) -> int:
    """One JSON line per input on stdout, in order; a failed input is reported on stderr."""
    settings = Settings.from_env()
    predictor = _predictor(args, settings, face_centred=settings.face_centred and not args.whole_image)
    failed = 0
    for item in args.inputs:
        try:
            if item.lower().startswith(("http://", "https://")):
                answer = predictor.predict_url(item, allow_private=settings.allow_private_urls)
            else:
                path = Path(item)
                if not path.is_file():
                    raise FileNotFoundError(f"no such file: {item} (give an image file or an http(s) URL)")
                answer = predictor.predict(path)
        except (FetchError, ImageDecodeError, FileNotFoundError) as error:
            failed += 1
            print(f"maskdetect: error: {item}: {_said(error)}", file=sys.stderr)
            continue
        print(json.dumps({"input": item, **answer.as_dict()}), flush=True)
    return 1 if failed else 0


def command_export(args: argparse.Namespace) -> int:
    """Progress on stderr; one line per export kept on stdout."""
    formats = ("tflite", "onnx") if args.onnx else ("tflite",)
    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    checks = {} if args.images is None else {"images": args.images}
    for export in export_model(args.model or Settings.from_env().trained_model, formats=formats, say=say, **checks):
        print(
            f"wrote {export.path} ({export.bytes / 1e6:.2f} MB, sha256 {export.sha256[:12]}): max |p - p_keras| "
            f"{export.max_abs_diff:.2g} on {export.images} test images"
        )
    return 0


def _detector(args: argparse.Namespace):
    """The face detector: DETECTOR with any settings given on the command line."""
    settings = dict(DETECTOR)
    for name in ("scales", "score_threshold", "nms_threshold", "max_side"):
        if getattr(args, name, None) is not None:
            settings[name] = tuple(getattr(args, name)) if name == "scales" else getattr(args, name)
    return YuNetDetector(Settings.from_env().detector_weights, **settings).load(), settings


def command_evaluate(args: argparse.Namespace) -> int:
    """Print the metrics as JSON on stdout."""
    from .training.evaluate import evaluate_face_folder, evaluate_photo_folder  # scikit-learn

    settings = Settings.from_env()
    if args.target == "faces":
        report = evaluate_face_folder(args.directory, _predictor(args, settings, face_centred=False), progress=not args.quiet)
    elif args.target == "photos":
        predictor = _predictor(args, settings, face_centred=settings.face_centred and not args.whole_image)
        report = evaluate_photo_folder(args.directory, predictor, progress=not args.quiet)
    elif args.target == "clips":
        from .training import clips as clip_measures  # scikit-learn, through training.scenes

        if args.from_training == (args.images is not None or args.labels is not None) or (args.images is None) != (args.labels is None):
            raise ScenesError("give --images and --labels (labelled scenes to film), or --from-training (scenes made of held-out training faces)")
        with tempfile.TemporaryDirectory(prefix="maskdetect-clips-") as scratch:
            folder = args.out or Path(scratch)
            if args.from_training:
                from .training.composites import make_training_scenes

                images, labels = make_training_scenes(folder / "scenes", count=args.count + 4, seed=args.seed)  # spares, should one not fit
                degradation = clip_measures.Degradation()
            else:
                images, labels, degradation = args.images, args.labels, None
            clips = clip_measures.make_clips(images, labels, folder, count=args.count, seed=args.seed, degradation=degradation)
            detector, settings = _detector(args)
            analyzer = CrowdAnalyzer(detector, _crowd_predictor(args))
            runs, speeds = clip_measures.track_clips(clips, analyzer, stride=args.stride, progress=not args.quiet)
        report = clip_measures.clips_report([clip.name for clip, _ in clips], runs, speeds)
        if args.from_training:  # where the pooling rule and its settings are chosen: never on evaluation scenes
            report["pooling_search"] = clip_measures.search_pooling(runs)
        report["scenes"] = "held-out training faces, damaged frame by frame" if args.from_training else str(args.images)
        report["detector"], report["stride"] = settings, args.stride
    else:
        detector, settings = _detector(args)
        predictor = None if args.detection_only else _crowd_predictor(args)
        report = evaluate_scenes(
            args.images, args.labels, detector, predictor, args.limit, progress=not args.quiet, list_missed=args.missed
        )
        report["detector"] = settings
        report["model"] = predictor.name if predictor else None
    print(json.dumps(report, indent=2))
    return 0


def command_detect(args: argparse.Namespace) -> int:
    """The /detect answer for one image as JSON on stdout; --out writes the annotated image."""
    if not args.image.is_file():
        raise FileNotFoundError(f"no such file: {args.image}")
    detector, _ = _detector(args)
    image = decode_image(args.image)
    analysis = CrowdAnalyzer(detector, _crowd_predictor(args)).analyze(image)
    print(json.dumps(analysis.as_dict(), indent=2))
    if args.out:
        annotate(image, analysis, max_side=args.out_max_side).save(args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def command_watch(args: argparse.Namespace) -> int:
    """Track the faces of a video, a folder of frames, a camera or a stream; the summary as one JSON line on stdout."""
    from .core.tracking import SHARE_COLUMNS, FrameResult, analyze_video  # norfair and scipy: only the commands that track

    if (args.source is None) == (args.camera is None):
        raise VideoError("give one source: a video file, a folder of frames or a stream URL, or --camera N")
    if args.stride < 1 or (args.fps is not None and args.fps <= 0) or args.interval <= 0:
        raise VideoError("--stride must be 1 or more, and --fps and --interval over 0")
    settings = Settings.from_env()
    allow_private = args.allow_private_urls or settings.allow_private_urls
    video = open_video(args.camera if args.camera is not None else args.source, fps=args.fps,
                       allow_private=allow_private, limits=VideoLimits(max_seconds=None))
    zones = Zones(tuple(args.zone or ()), tuple(args.ignore_zone or ()))
    zones.check_frame(video.size, ("--zone", "--ignore-zone"))  # the frame's size is known once its first frame is read
    detector, _ = _detector(args)
    analyzer = CrowdAnalyzer(detector, _crowd_predictor(args))
    live = video.frame_count is None
    bar = tqdm(total=video.frame_count, unit="frame", desc="watch", disable=args.quiet, smoothing=0.1)
    with contextlib.ExitStack() as stack:
        lines = stack.enter_context(open(stack.enter_context(atomic_path(args.jsonl)), "w")) if args.jsonl else None

        def on_frame(result: FrameResult) -> None:
            bar.update(args.stride)
            if lines is not None:
                lines.write(json.dumps(result.as_dict()) + "\n")

        tracker = analyze_video(video, analyzer, args.stride, out=args.out, on_frame=on_frame,
                                stop_on_interrupt=live, interval_s=args.interval, zone=None if zones.everywhere else zones)
    bar.close()
    summary = tracker.summary()
    summary["zones"] = zones.as_dict()
    if args.csv:
        write_csv(summary["share_over_time"], SHARE_COLUMNS, args.csv)
    for path in (args.out, args.jsonl, args.csv):
        if path:
            print(f"wrote {path}", file=sys.stderr)
    if tracker.interrupted:
        print(f"maskdetect: stopped at Ctrl-C after {tracker.frames} processed frames", file=sys.stderr)
    print(json.dumps(summary), flush=True)
    return 0


def _zone(text: str) -> Polygon:
    """A --zone or --ignore-zone value: an argparse error (exit 2) that says what to do when it is no polygon."""
    try:
        return parse_polygon(text)
    except ZoneError as error:
        raise argparse.ArgumentTypeError(f'"{text}" {error}') from None


def _quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")


def _whole_image_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--whole-image",
        action="store_true",
        help="classify the whole photo instead of the largest face in it (the default; "
        "MASKDETECT_FACE_CENTRED=0 turns it off too)",
    )


def _crowd_predictor(args: argparse.Namespace) -> Predictor:
    """The classifier for face crops (the detector finds the faces)."""
    return _predictor(args, Settings.from_env(), face_centred=False)


def _predictor(args: argparse.Namespace, settings: Settings, face_centred: bool) -> Predictor:
    """--model (default: the served model), face-centred or not."""
    model = args.model or settings.served_model
    return Predictor.load(model, face_centred, detector_weights=settings.detector_weights)


def _detector_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("detector settings (default: maskdetect.core.constants.DETECTOR)")
    group.add_argument("--scales", type=float, nargs="+", metavar="S", help="run YuNet at these multiples of the image's size, merged (e.g. 1 2)")
    group.add_argument("--score-threshold", type=float, help="keep faces YuNet scores at least this")
    group.add_argument("--nms-threshold", type=float, help="overlap (IoU) above which the weaker of two boxes is dropped")
    group.add_argument("--max-side", type=int, help="shrink images whose longer side is over this, first")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskdetect", description="Face-mask detection.")
    commands = parser.add_subparsers(dest="command", required=True)

    data_parser = commands.add_parser(
        "data",
        help="download, verify and split the dataset",
        description=(
            "Without an action: verify the source and lay out data/{train,validation,test}/"
            "{with_mask,without_mask}/NNN.jpg from the committed data/splits.csv. "
            "'split' recomputes data/splits.csv (de-duplicate, group near-duplicates, split "
            "by group). 'faces' recomputes data/faces.csv (the largest face in each file, for "
            "training on face crops; several minutes). 'manifest' records --source as data/manifest.csv (maintainers only). "
            "With --set maskwear, 'split' and 'faces' recompute data/maskwear-splits.csv and data/maskwear-faces.csv."
        ),
    )
    data_parser.add_argument("action", nargs="?", choices=("materialise", "split", "faces", "manifest"), default="materialise")
    data_parser.add_argument(
        "--source",
        type=Path,
        help="folder holding with_mask/ and without_mask/ (default: $MASKDETECT_DATA_SOURCE, "
        "else download the pinned upstream commit into data/raw/)",
    )
    data_parser.add_argument(
        "--strategy",
        choices=("groups", "files"),
        default="groups",
        help="'groups' (default): the leakage-safe split; 'files': the original project's "
        "random file split, written to data/files-split/ to show how leakage inflates accuracy",
    )
    data_parser.add_argument("--out", type=Path, help="where 'split' / 'faces' / 'manifest' write (default: data/)")
    data_parser.add_argument(
        "--set",
        choices=("observations", "maskwear"),
        default="observations",
        help="the set 'split' and 'faces' recompute (default: observations; maskwear: maskwear-train, "
        "--source being its local copy, default $MASKDETECT_MASKWEAR_SOURCE or the download)",
    )
    _quiet_option(data_parser)
    data_parser.set_defaults(run=command_data)

    weights_parser = commands.add_parser(
        "weights",
        help="obtain the face detector's weights (YuNet) into deployment/weights/",
        description="Take the YuNet weights from $MASKDETECT_DETECTOR_SOURCE (a folder holding "
        "face_detection_yunet_2023mar.onnx), keep the copy already in deployment/weights/ "
        "($MASKDETECT_WEIGHTS_DIR), or download the pinned upstream file; check its sha256 and print its path.",
    )
    _quiet_option(weights_parser)
    weights_parser.set_defaults(run=command_weights)

    serve_parser = commands.add_parser(
        "serve",
        help="serve the model: nginx in front of gunicorn on HOST:PORT (default 127.0.0.1:9696)",
        description="Run the service as deployed: gunicorn (deployment/gunicorn.conf.py, the model at $MODEL_PATH) "
        "behind nginx (deployment/nginx.conf), which reads every request whole, within "
        "$MASKDETECT_CLIENT_TIMEOUT_S seconds per read, before a worker takes it. A request that waited for a worker "
        "longer than $MASKDETECT_QUEUE_BUDGET_S seconds is answered 503 with Retry-After. HUP reloads both, "
        "TERM or Ctrl-C stops them after the requests in flight.",
    )
    serve_module.add_arguments(serve_parser)
    serve_parser.set_defaults(run=command_serve)

    train_parser = commands.add_parser(
        "train",
        help="train the deployment model on data/ and write deployment/",
        description="Train with the deployed settings (maskdetect.training.train.DEPLOYED), select the "
        "epoch on validation, evaluate once on test and on the real-photo dev set, and write "
        "deployment/maskdetect.h5 and deployment/metrics.json. Run `make data` first.",
    )
    train_parser.add_argument("--model", choices=("cnn1", "cnn2", "cnn4", "pretrained"), help="override the model")
    train_parser.add_argument("--epochs", type=int, help="override the maximum number of epochs")
    train_parser.add_argument("--seed", type=int, help="override the seed")
    train_parser.add_argument("--out", type=Path, help="folder to write to (default: deployment/)")
    _quiet_option(train_parser)
    train_parser.set_defaults(run=command_train)

    model_help = f"the model file (default: $MODEL_PATH, else deployment/{SERVED_FILE})"
    predict_parser = commands.add_parser(
        "predict",
        help="classify image files or URLs with the deployment model",
        description="Print one JSON line per input, as POST /predict answers: {\"input\", \"label\", \"with_mask\", "
        "\"incorrect\", \"without_mask\", \"model\", \"face\"}. The three are the calibrated probabilities of a mask "
        "over nose and mouth, of one below the nose or on the chin, and of none (they sum to 1); the label is the most "
        "probable. Through the service's own code path: the largest face found is classified (\"face\" is its box; a "
        "second, slower look finds a small face when the first finds none), the whole photo when none is found. URLs are "
        "fetched under the same rules: public addresses only unless MASKDETECT_ALLOW_PRIVATE_URLS=1. Exits 1 if any input failed.",
    )
    predict_parser.add_argument("inputs", nargs="+", metavar="PATH_OR_URL", help="an image file or an http(s) URL")
    predict_parser.add_argument("--model", type=Path, help=model_help)
    _whole_image_option(predict_parser)
    predict_parser.set_defaults(run=command_predict)

    detect_parser = commands.add_parser(
        "detect",
        help="find every face in a photo, say who is not masked (or wears it wrong) and who stands close",
        description="Print the POST /detect answer for IMAGE as JSON: every face's box (pixels of the image as "
        "displayed), detector score, label (with_mask, incorrect: a mask below the nose or on the chin, or without_mask) "
        "and the three probabilities, the count of each label, the unmasked share (incorrect counts as not masked) and "
        "the close pairs of people not masked (see documentation/crowd.md for the distance assumptions). --out boxes "
        "each face green, amber or red.",
    )
    detect_parser.add_argument("image", type=Path, help="an image file")
    detect_parser.add_argument("--out", type=Path, help="also write the annotated image here (PNG, JPEG... by suffix)")
    detect_parser.add_argument(
        "--out-max-side", type=int, metavar="PX",
        help=f"shrink the --out image to at most PX a side, boxes and labels drawn to fit (POST /detect?format= answers "
        f"{ANNOTATED_MAX_SIDE}); default: the photo's own size",
    )
    detect_parser.add_argument("--model", type=Path, help=model_help)
    _detector_options(detect_parser)
    detect_parser.set_defaults(run=command_detect)

    watch_parser = commands.add_parser(
        "watch",
        help="track the faces of a video, a camera or a stream: each person counted once",
        description="Find and classify the faces of every --stride-th frame and track them: each person keeps an id, "
        "is labelled (with_mask, incorrect or without_mask) from all their frames, and is counted once. At the end one "
        "JSON line on stdout: unique_people, people_by_label, unique_unmasked_people (incorrect and without_mask), the "
        "people, the close encounters of people not masked (once each, with their duration) and the share over time, "
        "as POST /detect answers a clip. A camera or stream runs until Ctrl-C. For a fixed camera, --zone says where to count: "
        "a person counts once their face's centre was seen inside a --zone and outside every --ignore-zone (e.g. "
        "--zone \"0,120 640,120 640,360 0,360\" counts the lower two thirds of a 640x360 frame, --ignore-zone leaves out "
        "a poster or a window); the summary's \"zones\" lists those used.",
    )
    watch_parser.add_argument("source", nargs="?", help="a video file, a folder of frames, or an rtsp:// or http(s):// stream URL "
                              "(its host must be public; a best-effort check: FFmpeg then resolves it again and follows "
                              "redirects and playlists unchecked, so give only streams you trust)")
    watch_parser.add_argument("--camera", type=int, metavar="N", help="read camera N (0: the first) instead of SOURCE")
    watch_parser.add_argument("--stride", type=int, default=1, metavar="N", help="process every Nth frame (default: every frame)")
    watch_parser.add_argument("--fps", type=float, help="the source's frame rate, when it does not say (a folder of frames: 25)")
    watch_parser.add_argument("--out", type=Path, help="write the video with every face boxed (.mp4, or .webm to play in a browser)")
    watch_parser.add_argument("--jsonl", type=Path, help="write one JSON line per processed frame: its tracked faces and close pairs")
    watch_parser.add_argument("--csv", type=Path, help="write the summary per --interval: people in view, unmasked, share, close pairs")
    watch_parser.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds per --csv row (default 1)")
    watch_parser.add_argument("--zone", action="append", type=_zone, metavar='"X,Y X,Y X,Y ..."',
                              help=f"count only the people seen in this polygon: {ZONE_SYNTAX} (pixels of the frame, from its top "
                              "left); repeat for several zones (default: the whole frame)")
    watch_parser.add_argument("--ignore-zone", action="append", type=_zone, metavar='"X,Y X,Y X,Y ..."',
                              help="leave out the faces seen in this polygon (same form; repeatable): a poster, a window, a mirror")
    watch_parser.add_argument("--allow-private-urls", action="store_true",
                              help="let a stream URL reach loopback and private addresses (also MASKDETECT_ALLOW_PRIVATE_URLS=1)")
    watch_parser.add_argument("--model", type=Path, help=model_help)
    _detector_options(watch_parser)
    _quiet_option(watch_parser)
    watch_parser.set_defaults(run=command_watch)

    export_parser = commands.add_parser(
        "export",
        help="convert the deployment model to TFLite (and ONNX), checked against it",
        description="Convert the Keras model to TFLite with 8-bit weights (MODEL.tflite beside it, served by the lean "
        "runtime without TensorFlow) and, with --onnx, to ONNX (MODEL.onnx). Each export is run next to the "
        "Keras model on test images (data/test: run `maskdetect data` first) and refused, with no file written, "
        "if any p(with_mask) differs by more than 0.02 (TFLite) or 1e-5 (ONNX). The checks are recorded in metrics.json beside the model.",
    )
    export_parser.add_argument("--model", type=Path, help="the Keras model file (default: $MODEL_PATH, else deployment/maskdetect.h5)")
    export_parser.add_argument("--onnx", action="store_true", help="also export ONNX (MODEL.onnx; not committed)")
    export_parser.add_argument(
        "--images", type=int, metavar="N", help="test images to check each export on (default: 256, the whole test split)"
    )
    export_parser.set_defaults(run=command_export)

    evaluate_parser = commands.add_parser(
        "evaluate",
        help="measure crowd analysis on labelled scenes, or the classifier on face crops or photos",
        description="Print JSON metrics. 'scenes': face recall (overall and by size), unmatched detections, label "
        "accuracy, unmasked-share error, seconds per image (see maskdetect.training.scenes). 'clips': the face tracker on synthetic clips filmed over those scenes: recall and id switches per person, label accuracy per frame and per track, the unique-person count (see maskdetect.training.clips). 'faces': accuracy, "
        "balanced accuracy, ROC AUC (masked or not) and the three-label confusion matrix on DIR/with_mask, DIR/incorrect "
        "(if there is one) and DIR/without_mask, each file classified as it is (face crops). 'photos': the same, each "
        "file answered as POST /predict answers it (the largest face found, else the whole photo), e.g. data/test.",
    )
    targets = evaluate_parser.add_subparsers(dest="target", required=True)
    scenes_parser = targets.add_parser("scenes", help="photos with a labelled box on every face")
    scenes_parser.add_argument("--images", type=Path, required=True, help="the folder of scene images")
    scenes_parser.add_argument("--labels", type=Path, required=True, help="CSV image,xmin,ymin,xmax,ymax,label")
    scenes_parser.add_argument("--model", type=Path, help=model_help)
    scenes_parser.add_argument("--detection-only", action="store_true", help="no classifier: detection metrics only")
    scenes_parser.add_argument("--limit", type=int, help="only the first N images (by name), for quick checks")
    scenes_parser.add_argument(
        "--missed", action="store_true", help="also list every missed labelled face, with the best IoU a detection reached on it"
    )
    _quiet_option(scenes_parser)
    _detector_options(scenes_parser)
    clips_parser = targets.add_parser(
        "clips",
        help="the face tracker on synthetic labelled clips panned and zoomed over labelled scenes",
        description="Film labelled scenes with a virtual camera and measure the tracker on the clips: recall and id "
        "switches per person, label accuracy per frame and per track (masked or not, and exactly), the people counted, "
        "and under 'pooling' each rule for a track's label (mean, weighted, weighted-log) on the same tracks. "
        "--from-training films scenes composed of held-out training faces (maskwear-train validation and test, "
        "realfaces-train validation) with frames damaged as in real video, and adds 'pooling_search', the settings of "
        "the frame weighting measured there: choose the rule there, never on evaluation scenes.",
    )
    clips_parser.add_argument("--images", type=Path, help="the folder of scene images")
    clips_parser.add_argument("--labels", type=Path, help="CSV image,xmin,ymin,xmax,ymax,label")
    clips_parser.add_argument(
        "--from-training",
        action="store_true",
        help="instead of --images and --labels: scenes of held-out training faces (see maskdetect.training.composites), "
        "frames damaged in episodes (blur, low resolution, noise, shadow, occlusion)",
    )
    clips_parser.add_argument("--count", type=int, default=12, help="clips to make (default 12; scenes with 3+ faces of 24+ px)")
    clips_parser.add_argument("--seed", type=int, default=0, help="which scenes and camera paths (default 0)")
    clips_parser.add_argument("--stride", type=int, default=1, metavar="N", help="track every Nth frame (default 1)")
    clips_parser.add_argument("--out", type=Path, help="keep the clips and their truth CSVs (and the composed scenes) here (default: a temporary folder)")
    clips_parser.add_argument("--model", type=Path, help=model_help)
    _quiet_option(clips_parser)
    _detector_options(clips_parser)
    faces_parser = targets.add_parser("faces", help="face crops in DIR/with_mask and DIR/without_mask")
    faces_parser.add_argument("directory", type=Path, metavar="DIR")
    faces_parser.add_argument("--model", type=Path, help=model_help)
    _quiet_option(faces_parser)
    photos_parser = targets.add_parser("photos", help="photos in DIR/with_mask and DIR/without_mask, answered as /predict does")
    photos_parser.add_argument("directory", type=Path, metavar="DIR")
    photos_parser.add_argument("--model", type=Path, help=model_help)
    _whole_image_option(photos_parser)
    _quiet_option(photos_parser)
    evaluate_parser.set_defaults(run=command_evaluate)
    return parser


def _said(error: Exception) -> str:
    """An error for the operator who ran the command: a refused URL host names why (a caller of the service is not told)."""
    if isinstance(error, HostRefused):
        return f"{error} ({error.detail}; MASKDETECT_ALLOW_PRIVATE_URLS=1 lifts the address rule)"
    return str(error)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (DataError, ExportError, FetchError, ModelError, ScenesError, ImageDecodeError, VideoError, WeightsError, ZoneError,
            FileNotFoundError) as error:
        print(f"maskdetect: error: {_said(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("maskdetect: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
