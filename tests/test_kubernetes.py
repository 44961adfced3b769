"""deployment/kubernetes/, checked offline: no cluster, no network.

Every manifest is validated against Kubernetes' own schemas (kubernetes-validate, strict: an
unknown or misspelt field fails), and the properties that make the deployment work are
checked against their sources: the port and the model path against the Dockerfile, the probe
path against the Flask app's health route, the environment against what
deployment/gunicorn.conf.py reads, the read-only set-up against what `make docker-check` runs.
"""

from __future__ import annotations

import copy
import re
import runpy
import shlex
from pathlib import Path

import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate

from tests.samples import dockerfile_instructions
from maskdetect.core.constants import SERVED_FILE

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deployment" / "kubernetes"
DOCS = ROOT / "documentation" / "deployment.md"

# The oldest Kubernetes the manifests are checked against, and the newest schemas shipped.
OLDEST_KUBERNETES = "1.30"
NEWEST_KUBERNETES = kubernetes_validate.major_minor(kubernetes_validate.latest_version())


# ---------------------------------------------------------------------------- reading

def _manifest_files() -> list[Path]:
    return sorted(path for path in K8S.glob("*.y*ml") if path.name != "kustomization.yaml")


def _documents(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _resources() -> dict[str, dict]:
    """kind -> the one resource of that kind in deployment/kubernetes/."""
    found: dict[str, dict] = {}
    for path in _manifest_files():
        for document in _documents(path):
            assert document["kind"] not in found, f"two {document['kind']}s in deployment/kubernetes/"
            found[document["kind"]] = document
    return found


@pytest.fixture(scope="module")
def resources() -> dict[str, dict]:
    return _resources()


@pytest.fixture(scope="module")
def deployment(resources) -> dict:
    return resources["Deployment"]


@pytest.fixture(scope="module")
def container(deployment) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container: the service"
    return containers[0]


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    return dockerfile_instructions(ROOT / "Dockerfile")


def _dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, rest in _dockerfile():
        if keyword == "ENV":
            for word in shlex.split(rest):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def _named_port(container: dict, port) -> int:
    """A probe's or Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    matches = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    assert matches, f"no container port named {port!r}"
    return matches[0]


_SUFFIXES = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def quantity(value) -> float:
    """A Kubernetes resource quantity ("500m", "1536Mi", "2", "1e3") as a number."""
    match = re.fullmatch(r"([0-9.]+(?:[eE][-+]?[0-9]+)?)(|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)", str(value))
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def test_quantity_reads_kubernetes_units():
    assert quantity("500m") == 0.5
    assert quantity(2) == 2
    assert quantity("1536Mi") == 1536 * 2**20
    assert quantity("2G") == 2e9
    assert quantity("1e3") == 1000
    with pytest.raises(ValueError):
        quantity("2 GB")


# ---------------------------------------------------------------------------- schemas

@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
@pytest.mark.parametrize("path", _manifest_files(), ids=lambda path: path.name)
def test_manifest_is_valid_kubernetes(path, version):
    documents = _documents(path)
    assert documents, f"{path.name} holds no resource"
    for document in documents:
        # Raises on a schema violation, and on a kind or apiVersion this version does not know.
        assert kubernetes_validate.validate(document, version, strict=True) == version


def test_strict_validation_rejects_a_misspelt_field(deployment):
    """The check above has teeth: a typo that kubectl would drop silently fails it."""
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {"httpGet": {"path": "/health", "port": 9696}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        kubernetes_validate.validate(broken, NEWEST_KUBERNETES, strict=True)


def test_kustomization_lists_every_manifest_and_sets_the_image(container):
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(path.name for path in _manifest_files()), (
        "kustomization.yaml must list every manifest in deployment/kubernetes/ (and only those)"
    )
    # The image users replace: one `images:` entry, matching the container's placeholder name.
    (image,) = kustomization["images"]
    assert image["name"] == container["image"].split(":")[0]
    assert image["newName"] and image["newTag"]


# ---------------------------------------------------------------------------- the Deployment

def test_container_port_is_the_images(container):
    exposed = [rest for keyword, rest in _dockerfile() if keyword == "EXPOSE"]
    assert exposed, "the Dockerfile EXPOSEs no port"
    (port,) = [p for p in container["ports"] if p["name"] == "http"]
    assert str(port["containerPort"]) == exposed[-1].split("/")[0]
    assert port["protocol"] == "TCP"


def test_probes_call_the_apps_health_route_on_the_container_port(container):
    from flask import Flask

    from maskdetect.service import api

    app = Flask(__name__)
    app.register_blueprint(api.bp)
    (rule,) = [rule for rule in app.url_map.iter_rules() if rule.endpoint == f"{api.bp.name}.health"]
    assert "GET" in rule.methods
    healthcheck = dict(_dockerfile())["HEALTHCHECK"]
    assert f"{rule.rule}'" in healthcheck, "the Dockerfile's HEALTHCHECK and the app disagree on the health path"

    port = container["ports"][0]["containerPort"]
    for kind in ("startupProbe", "readinessProbe"):  # readiness: a worker answers with the model loaded
        probe = container[kind]
        assert probe["httpGet"]["path"] == rule.rule, kind
        assert _named_port(container, probe["httpGet"]["port"]) == port, kind
    liveness = container["livenessProbe"]["httpGet"]  # liveness: nginx alone, not a busy worker
    assert _named_port(container, liveness["port"]) == port
    assert f"location = {liveness['path']} {{" in (ROOT / "deployment" / "nginx.conf").read_text()


def test_probe_timings_fit_gunicorns(container):
    startup = container["startupProbe"]
    # Model loading takes seconds to tens of seconds; the startup probe allows minutes.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[kind]["timeoutSeconds"] < container[kind]["periodSeconds"], kind


def test_termination_grace_covers_the_pause_and_both_drains(deployment, container):
    gunicorn = runpy.run_path(str(ROOT / "deployment" / "gunicorn.conf.py"))
    (command, seconds) = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command == "sleep" and int(seconds) >= 3  # the endpoints drop the pod first
    # nginx finishes what it holds (a request takes at most gunicorn's timeout), then gunicorn's workers theirs
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > int(seconds) + 2 * gunicorn["graceful_timeout"]


def test_environment_is_what_the_gunicorn_config_reads(container):
    """The Deployment sets each setting gunicorn.conf.py reads itself or through Settings (address, model), no other."""
    conf = (ROOT / "deployment" / "gunicorn.conf.py").read_text()
    read = set(re.findall(r"os\.environ\.get\(\s*['\"](\w+)['\"]", conf))
    assert "_settings.host" in conf and "_settings.port" in conf and "_settings.served_model" in conf
    read |= {"HOST", "PORT", "MODEL_PATH"}  # Settings.from_env() reads them for the bind address and the model
    read.discard("MASKDETECT_GUNICORN_BIND")  # maskdetect serve sets it: gunicorn on a socket behind nginx
    assert {"HOST", "PORT", "WORKERS", "MODEL_PATH"} <= read, read
    env = {item["name"]: item["value"] for item in container["env"]}
    assert set(env) == read

    image_env = _dockerfile_env()
    assert env["HOST"] == "0.0.0.0", "gunicorn must listen on every interface in a pod"
    assert env["PORT"] == str(container["ports"][0]["containerPort"]) == image_env["PORT"]
    assert int(env["WORKERS"]) >= 1
    # The model the pod is sized for is the one the image ships (and the image's default): the .tflite.
    assert env["MODEL_PATH"] == image_env["MODEL_PATH"] == f"/app/deployment/{SERVED_FILE}"
    workdir = [rest for keyword, rest in _dockerfile() if keyword == "WORKDIR"][-1]
    copied = [rest.split() for keyword, rest in _dockerfile() if keyword == "COPY"]
    shipped = {f"{workdir.rstrip('/')}/{words[-1].rstrip('/')}/{Path(source).name}"
               for words in copied for source in words[:-1]}
    assert env["MODEL_PATH"] in shipped, f"{env['MODEL_PATH']} is not a file the Dockerfile copies"


# Measured by deployment/docker/memory.sh in the default image (documentation/deployment.md, "Sizing"), GB:
POD_BASE_GB = 0.04  # maskdetect serve, nginx and the gunicorn master (PSS)
WORKER_GB = 0.11  # a worker after 20 alternating /predict and /detect calls (PSS)
LARGEST_DETECT_GB = 0.53  # what a POST /detect of a 40 MP JPEG adds to its worker while it runs


def test_resources_have_requests_and_limits_that_fit(container, resources):
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    for name in ("cpu", "memory"):
        assert quantity(limits[name]) >= quantity(requests[name]), name
    # The request: the pod at rest plus one of the largest /detects; the limit: every worker running one.
    workers = int({item["name"]: item["value"] for item in container["env"]}["WORKERS"])
    at_rest = (POD_BASE_GB + WORKER_GB * workers) * 1e9
    assert quantity(requests["memory"]) >= 1.2 * (at_rest + LARGEST_DETECT_GB * 1e9)
    assert quantity(limits["memory"]) >= 1.2 * (at_rest + LARGEST_DETECT_GB * 1e9 * workers)
    # The documentation states the same numbers.
    docs = DOCS.read_text()
    for value in (requests["cpu"], limits["cpu"], requests["memory"], limits["memory"]):
        assert f"`{value}`" in docs, f"documentation/deployment.md does not state {value}"


def test_deployment_selects_its_pods_and_leaves_replicas_to_the_autoscaler(deployment):
    spec = deployment["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert "replicas" not in spec, "the HorizontalPodAutoscaler sets the count; a value here resets it on apply"
    rollout = spec["strategy"]["rollingUpdate"]
    assert rollout["maxUnavailable"] == 0 and rollout["maxSurge"] >= 1


def test_pod_runs_as_the_images_user_without_privileges(deployment, container):
    pod = deployment["spec"]["template"]["spec"]
    effective = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    (useradd,) = [rest for keyword, rest in _dockerfile() if keyword == "RUN" and "useradd" in rest]
    uid = int(re.search(r"--uid\s+(\d+)", useradd).group(1))
    assert effective["runAsNonRoot"] is True
    assert effective["runAsUser"] == uid != 0
    assert effective["readOnlyRootFilesystem"] is True
    assert effective["allowPrivilegeEscalation"] is False
    assert effective["capabilities"] == {"drop": ["ALL"]}
    assert effective["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not effective.get("privileged")
    assert pod["automountServiceAccountToken"] is False
    # A Service named maskdetect would otherwise put MASKDETECT_* variables into the pod's
    # environment, the prefix of the app's own settings.
    assert pod["enableServiceLinks"] is False
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key), key


def _writable_mounts(deployment, container) -> dict[str, dict]:
    """mountPath -> emptyDir settings, for the container's writable mounts."""
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if not mount.get("readOnly"):
            assert "emptyDir" in volume, f"{mount['mountPath']}: only scratch space is writable"
            mounts[mount["mountPath"]] = volume["emptyDir"]
    return mounts


def _bash_array(script: str, name: str) -> list[str]:
    match = re.search(rf"^{name}=\((.*)\)$", script, re.MULTILINE)
    assert match, f"deployment/docker/check.sh defines no {name}=(...)"
    return shlex.split(match.group(1))


def test_docker_check_runs_the_image_as_the_deployment_does(deployment, container):
    """`make docker-check` proves the image works read-only; it must run it the same way."""
    mounts = _writable_mounts(deployment, container)
    assert "/tmp" in mounts, "TensorFlow's import and Flask's upload spooling need a writable /tmp"

    script = (ROOT / "deployment" / "docker" / "check.sh").read_text()
    flags = _bash_array(script, "RESTRICTED_RUN")
    assert "--read-only" in flags
    assert "--read-only-tmpfs=false" in _bash_array(script, "PODMAN_RESTRICTED_RUN")
    assert re.search(r'run_flags=\(.*"\$\{RESTRICTED_RUN\[@\]\}"', script), "check.sh does not run with RESTRICTED_RUN"
    assert re.search(r'run_flags\+=\(.*"\$\{PODMAN_RESTRICTED_RUN\[@\]\}"', script)

    tmpfs = {}
    for flag, value in zip(flags, flags[1:]):
        if flag == "--tmpfs":
            path, _, options = value.partition(":")
            size = dict(option.partition("=")[::2] for option in options.split(",")).get("size")
            tmpfs[path] = size
    assert set(tmpfs) == set(mounts), "check.sh's tmpfs mounts and the Deployment's writable mounts differ"
    for path, size in tmpfs.items():
        number, unit = re.fullmatch(r"(\d+)([kmg]?)", size).groups()
        size_bytes = int(number) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[unit]
        assert size_bytes == quantity(mounts[path]["sizeLimit"]), path

    assert flags[flags.index("--cap-drop") + 1] == "ALL"
    assert flags[flags.index("--security-opt") + 1] == "no-new-privileges"


def test_gunicorn_heartbeats_go_to_a_tmpfs():
    """Not to /tmp: an emptyDir there is disk-backed, and gunicorn blocks on slow heartbeats."""
    gunicorn = runpy.run_path(str(ROOT / "deployment" / "gunicorn.conf.py"))
    if Path("/dev/shm").is_dir():
        assert gunicorn["worker_tmp_dir"] == "/dev/shm"
    else:
        assert gunicorn["worker_tmp_dir"] is None


# ---------------------------------------------------------------------------- Service and HPA

def test_service_sends_port_80_to_the_pods_container_port(resources, deployment, container):
    service = resources["Service"]["spec"]
    assert service["type"] == "ClusterIP"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["selector"] and service["selector"].items() <= labels.items()
    (port,) = service["ports"]
    assert port["port"] == 80
    assert _named_port(container, port["targetPort"]) == container["ports"][0]["containerPort"]


def test_autoscaler_scales_the_deployment_on_cpu(resources, deployment, container):
    hpa = resources["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", deployment["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = [metric for metric in hpa["spec"]["metrics"] if metric["type"] == "Resource"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    # Utilization is a share of the CPU request: without one the autoscaler cannot compute it.
    assert quantity(container["resources"]["requests"]["cpu"]) > 0


def _pods_metrics(resources) -> dict[str, float]:
    """The autoscaler's Pods metrics: name -> target average per pod."""
    metrics = [metric for metric in resources["HorizontalPodAutoscaler"]["spec"]["metrics"] if metric["type"] == "Pods"]
    for metric in metrics:
        assert metric["pods"]["target"]["type"] == "AverageValue"
    return {metric["pods"]["metric"]["name"]: quantity(metric["pods"]["target"]["averageValue"]) for metric in metrics}


def test_autoscaler_also_scales_on_waiting_below_each_capacity(resources, container):
    """Busy workers and URL fetches, which use no CPU: each target is a share of what one pod holds at most."""
    from maskdetect.core.constants import URL_FETCHES

    targets = _pods_metrics(resources)
    assert set(targets) == {"maskdetect_busy_workers", "maskdetect_url_fetches_in_flight"}
    workers = int({item["name"]: item["value"] for item in container["env"]}["WORKERS"])
    assert 0 < targets["maskdetect_busy_workers"] < workers  # with every worker busy, every request waits
    assert 0 < targets["maskdetect_url_fetches_in_flight"] < URL_FETCHES  # at the cap the fetch stage answers 503


def test_prometheus_adapter_serves_the_autoscalers_metrics_from_the_apps_series(resources, deployment):
    """Each Pods metric is one adapter rule over a series the app exports: a counter's rate, a gauge's average."""
    from flask import Flask
    from prometheus_client import Counter, Gauge

    from maskdetect.service import metrics
    from maskdetect.service.metrics import bp

    exported = {value._name: type(value) for value in vars(metrics).values() if isinstance(value, (Counter, Gauge))}
    values = yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())
    rules = {rule["name"]["as"]: rule for rule in values["rules"]["custom"]}
    assert set(rules) == set(_pods_metrics(resources)), "one adapter rule per Pods metric of hpa.yaml"
    for name, rule in rules.items():
        series = re.fullmatch(r'\{__name__="(\w+)",namespace!="",pod!=""\}', rule["seriesQuery"]).group(1)
        assert re.fullmatch(rule["name"]["matches"], series), name
        kind = exported.get(series.removesuffix("_total"))
        assert kind is not None, f"{series} is not a series of maskdetect/service/metrics.py"
        function = "rate" if kind is Counter else "avg_over_time"  # a counter only grows; a gauge is sampled
        assert f"sum({function}(<<.Series>>{{<<.LabelMatchers>>}}[" in rule["metricsQuery"], name
        assert rule["metricsQuery"].endswith("by (<<.GroupBy>>)"), name
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}  # per pod, as a Pods metric needs

    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    app = Flask(__name__)
    app.register_blueprint(bp)
    assert annotations["prometheus.io/path"] in {rule.rule for rule in app.url_map.iter_rules()}
