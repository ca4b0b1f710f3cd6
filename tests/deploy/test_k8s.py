"""Checks of the Kubernetes deployment (k8s/) and of the container build files.

Offline and fast: PyYAML and the standard library. The KubeRay CRD schema check also needs
`jsonschema` and the CRDs in <repo>/../shared/kuberay; it is skipped without either.
"""

import configparser
import fnmatch
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

try:
    import tomllib
except ImportError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
KUBERAY_CRDS = REPO.parent / "shared" / "kuberay"
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Env var names that carry credentials: they must come from a Secret.
SECRET_ENV = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|CREDENTIAL|USER(NAME)?$", re.IGNORECASE)
# A credential inside a URI: scheme://user:password@host
URI_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)
WORKLOADS = ("Deployment", "StatefulSet")


# --- loading -------------------------------------------------------------------------------


def _yaml_files():
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def _load(path):
    return [d for d in yaml.load_all(path.read_text(), Loader=YAML_LOADER) if d is not None]


@pytest.fixture(scope="module")
def manifests():
    """Every Kubernetes object under k8s/, as (path relative to the repo, object)."""
    return [(p.relative_to(REPO), d) for p in _yaml_files() for d in _load(p)]


@pytest.fixture(scope="module")
def kustomizations():
    return {p.parent: yaml.safe_load(p.read_text()) for p in K8S.rglob("kustomization.yaml")}


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _ray_pin(pyproject):
    for dep in pyproject["project"]["dependencies"]:
        match = re.fullmatch(r"ray\[[^\]]*\]==(\S+)", dep.replace(" ", ""))
        if match:
            return match.group(1)
    raise AssertionError("pyproject pins no ray[...]==VERSION")


def _one(manifests, kind, name=None):
    found = [d for _, d in manifests if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _walk(node, key):
    """Every value stored under `key`, at any depth."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)


def _pod_specs(obj):
    """Every pod spec in an object (Deployment, StatefulSet, RayJob, RayCluster, ...)."""
    if isinstance(obj, dict):
        if isinstance(obj.get("containers"), list):
            yield obj
        for v in obj.values():
            yield from _pod_specs(v)
    elif isinstance(obj, list):
        for item in obj:
            yield from _pod_specs(item)


def _containers(obj, init=True):
    for spec in _pod_specs(obj):
        yield from spec["containers"]
        if init:
            yield from spec.get("initContainers", [])


def _env(container):
    return {e["name"]: e for e in container.get("env", [])}


def _ray_groups(obj):
    """(name, template) of the head and each worker group of a RayJob or RayCluster."""
    spec = obj["spec"]["rayClusterSpec"] if obj["kind"] == "RayJob" else obj["spec"]
    yield "head", spec["headGroupSpec"]
    for group in spec["workerGroupSpecs"]:
        yield group["groupName"], group


def _selects(selector, labels):
    """Whether a Kubernetes label selector selects `labels` ({} selects everything)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


# --- parsing and wiring ----------------------------------------------------------------------


def test_every_manifest_parses_and_names_itself(manifests):
    assert len(_yaml_files()) >= 8
    for path, obj in manifests:
        assert isinstance(obj, dict), path
        assert obj.get("apiVersion") and obj.get("kind"), path
        assert obj.get("metadata", {}).get("name"), path
        assert obj["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "scalestudy", (
            f"{path}: {obj['kind']}/{obj['metadata']['name']} lacks the part-of label"
        )


def test_kustomizations_cover_every_manifest(kustomizations):
    used = set()
    for folder, kust in kustomizations.items():
        assert kust["kind"] in ("Kustomization", "Component"), folder
        for entry in kust.get("resources", []) + kust.get("components", []):
            target = (folder / entry).resolve()
            assert target.exists(), f"{folder}/kustomization.yaml: missing {entry}"
            used.add(target)
    root = kustomizations[K8S]
    assert {"platform", "study"} <= set(root["resources"])
    unused = [p for p in _yaml_files() if p.resolve() not in used]
    assert not unused, f"manifests no kustomization applies: {unused}"


def test_secret_and_configmap_references_resolve(manifests, kustomizations):
    platform = kustomizations[K8S / "platform"]
    assert platform.get("generatorOptions", {}).get("disableNameSuffixHash") is True, (
        "custom resources name Secrets literally; hashed names would break them"
    )
    secret_keys = {}
    for gen in platform["secretGenerator"]:
        keys = set()
        for env_file in gen.get("envs", []):
            example = K8S / "platform" / f"{env_file}.example"
            lines = example.read_text().splitlines()
            keys |= {ln.split("=", 1)[0] for ln in lines if "=" in ln and not ln.startswith("#")}
        secret_keys[gen["name"]] = keys
    configmaps = {d["metadata"]["name"]: d for _, d in manifests if d["kind"] == "ConfigMap"}
    for path, obj in manifests:
        for ref in _walk(obj, "secretKeyRef"):
            assert ref["key"] in secret_keys.get(ref["name"], ()), f"{path}: no Secret key {ref}"
        for ref in _walk(obj, "configMapRef"):
            assert ref["name"] in configmaps, f"{path}: no ConfigMap {ref['name']}"
        for spec in _pod_specs(obj):
            for volume in spec.get("volumes", []):
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in configmaps, path
        for auth in _walk(obj, "authOptions"):  # KubeRay reads the token from key auth_token
            assert "auth_token" in secret_keys.get(auth["secretName"], ()), f"{path}: {auth}"


# --- credentials ---------------------------------------------------------------------------


def test_no_inline_secrets(manifests):
    for path, obj in manifests:
        assert obj["kind"] != "Secret", f"{path}: Secret objects with literal data are not allowed"
        for container in _containers(obj):
            for name, entry in _env(container).items():
                if SECRET_ENV.search(name):
                    assert "value" not in entry, f"{path}: {name} has an inline value"
                    assert "secretKeyRef" in entry.get("valueFrom", {}), f"{path}: {name}"
            for arg in container.get("command", []) + container.get("args", []):
                assert not re.search(r"password|secret|token", arg.split("=")[0], re.IGNORECASE), arg
    for path in K8S.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".ini", ".md", ".py", ".sh", ""):
            assert not URI_WITH_PASSWORD.search(path.read_text()), f"{path}: credential in a URI"


def test_credential_files_are_gitignored(kustomizations):
    patterns = [
        ln.strip() for ln in (K8S / ".gitignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]

    def ignored(path):
        rel = path.relative_to(K8S).as_posix()
        return any(fnmatch.fnmatch(rel, p.lstrip("/")) for p in patterns)

    for folder, kust in kustomizations.items():
        for gen in kust.get("secretGenerator", []):
            for item in gen.get("envs", []) + gen.get("files", []):
                assert ignored(folder / item), f"{item} must be gitignored"
                assert (folder / f"{item}.example").is_file(), f"{item} needs an example"
    for env_file in K8S.rglob("*.env"):  # e.g. ones generate.sh wrote on this machine
        assert ignored(env_file), env_file
    dockerignore = (REPO / ".dockerignore").read_text().splitlines()
    assert "k8s/platform/secrets/*.env" in dockerignore


# --- Ray: versions, token auth, GPUs, the CLI ----------------------------------------------


def test_ray_versions_and_images_agree_with_pyproject(manifests, pyproject):
    pin = _ray_pin(pyproject)
    versions = [v for _, d in manifests for v in _walk(d, "rayVersion")]
    assert len(versions) >= 2 and set(versions) == {pin}, versions
    texts = [p for p in K8S.rglob("*") if p.is_file()] + [REPO / "Dockerfile"]
    tags = [
        (p, tag)
        for p in texts
        for tag in re.findall(r"rayproject/ray(?:-ml)?:([\w.-]+)", p.read_text(errors="ignore"))
    ]
    assert any(p.name == "Dockerfile" for p, _ in tags), "the Dockerfile is not FROM rayproject/ray"
    for path, tag in tags:
        assert tag.split("-")[0] == pin, f"{path}: rayproject/ray:{tag}, pyproject pins {pin}"


def _mlflow_version(dockerfile):
    match = re.search(r"^ARG MLFLOW_VERSION=(\S+)$", dockerfile.read_text(), re.MULTILINE)
    assert match, f"{dockerfile}: no ARG MLFLOW_VERSION"
    return match.group(1)


def test_image_tags_agree_with_pyproject(manifests, kustomizations, pyproject):
    version = pyproject["project"]["version"]
    mlflow_version = _mlflow_version(K8S / "mlflow-image" / "Dockerfile")
    assert _mlflow_version(REPO / "Dockerfile") == mlflow_version, "client and server MLflow differ"
    specifiers = pytest.importorskip("packaging.specifiers")
    (mlflow_dep,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("mlflow")]
    assert mlflow_version in specifiers.SpecifierSet(mlflow_dep[len("mlflow"):]), mlflow_dep
    expected = {"scalestudy": version, "scalestudy-mlflow": mlflow_version}
    images = kustomizations[K8S / "images"]["images"]
    assert {i["name"]: i["newTag"] for i in images} == expected
    for path, obj in manifests:
        for container in _containers(obj):
            name, _, tag = container["image"].rpartition(":")
            if name in expected:
                assert tag == expected[name], f"{path}: {container['image']}"
    readme = (K8S / "README.md").read_text()
    for name, tag in re.findall(r"\b(scalestudy(?:-mlflow)?):(\d[\w.]*)", readme):
        assert tag == expected[name], f"k8s/README.md names {name}:{tag}"


@pytest.mark.parametrize("kind", ["RayJob", "RayCluster"])
def test_ray_token_auth_on_every_node(manifests, kind):
    obj = _one(manifests, kind)
    spec = obj["spec"]["rayClusterSpec"] if kind == "RayJob" else obj["spec"]
    auth = spec["authOptions"]
    assert auth["mode"] == "token"
    for group, template in _ray_groups(obj):
        ray_container = template["template"]["spec"]["containers"][0]
        env = _env(ray_container)
        assert env["RAY_AUTH_MODE"].get("value") == "token", group
        ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": auth["secretName"], "key": "auth_token"}, group
        assert "MLFLOW_TRACKING_USERNAME" in env and "MLFLOW_TRACKING_PASSWORD" in env, group


@pytest.mark.parametrize("kind", ["RayJob", "RayCluster"])
def test_ray_has_a_cpu_head_and_a_gpu_worker_group(manifests, kind):
    groups = dict(_ray_groups(_one(manifests, kind)))
    head = groups.pop("head")
    assert head["rayStartParams"].get("num-cpus") == "0", "trials must not land on the head"
    assert "nvidia.com/gpu" not in str(head["template"]["spec"]["containers"][0]["resources"])
    gpus = [
        int(g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0))
        for g in groups.values()
    ]
    assert gpus and min(gpus) >= 1, "a trial with gpus_per_worker: 1 needs a GPU worker"
    ports = {p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert {6379, 8265, 10001} <= ports


def test_rayjob_entrypoint_is_accepted_by_the_cli(manifests):
    from scalestudy.cli import build_parser

    argv = shlex.split(_one(manifests, "RayJob")["spec"]["entrypoint"])
    assert argv[0] == "scalestudy"
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"scalestudy's CLI rejects the RayJob entrypoint: {argv}")
    values = {str(v) for v in vars(args).values()}
    assert {"auto", "s3://scalestudy/ray", "http://mlflow:5000"} <= values, values


def test_rayjob_spec_file_ships_in_the_image(manifests):
    argv = shlex.split(_one(manifests, "RayJob")["spec"]["entrypoint"])
    assert argv[1] == "run"
    spec_path = argv[2]
    # The Dockerfile copies the repository to /app.
    assert spec_path.startswith("/app/search_spaces/"), spec_path
    assert (REPO / spec_path[len("/app/"):]).is_file(), f"{spec_path} is not in the repository"
    assert re.search(r"^COPY .*\. /app$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not {"search_spaces", "scalestudy", "pyproject.toml"} & set(ignored)


def test_ray_clients_point_at_the_services(manifests):
    services = {d["metadata"]["name"]: d for _, d in manifests if d["kind"] == "Service"}

    def assert_service(url):
        parts = urlsplit(url)
        ports = [p["port"] for p in services[parts.hostname]["spec"]["ports"]]
        assert parts.port in ports, url

    env = _one(manifests, "ConfigMap", "scalestudy-env")["data"]
    assert_service(env["MLFLOW_TRACKING_URI"])
    assert_service(env["AWS_ENDPOINT_URL"])
    argv = shlex.split(_one(manifests, "RayJob")["spec"]["entrypoint"])
    assert_service(argv[argv.index("--tracking-uri") + 1])
    bucket = urlsplit(argv[argv.index("--storage") + 1]).netloc
    init = _one(manifests, "Deployment", "mlflow")["spec"]["template"]["spec"]["initContainers"]
    assert _env(init[0])["ARTIFACT_BUCKET"]["value"] == bucket, "nobody creates Tune's bucket"


# --- KubeRay CRD schemas -------------------------------------------------------------------


def _strict(schema):
    """Reject unknown fields like `kubectl apply` does (strict field validation)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(s) for s in schema]
    return schema


@pytest.mark.parametrize(
    ("kind", "crd_file"),
    [("RayJob", "ray.io_rayjobs.yaml"), ("RayCluster", "ray.io_rayclusters.yaml")],
)
def test_ray_manifests_validate_against_the_kuberay_crds(manifests, kind, crd_file):
    if not (KUBERAY_CRDS / crd_file).is_file():
        pytest.skip(f"{KUBERAY_CRDS / crd_file} is absent")
    jsonschema = pytest.importorskip("jsonschema")
    crd = yaml.load((KUBERAY_CRDS / crd_file).read_text(), Loader=YAML_LOADER)
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    validator = jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))
    docs = [d for _, d in manifests if d["kind"] == kind]
    assert docs
    for doc in docs:
        assert doc["apiVersion"] == f"{crd['spec']['group']}/v1"
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert not errors, "\n".join(errors[:10])


# --- the platform: workloads, Services, NetworkPolicies ------------------------------------


def test_workloads_and_services_fit_together(manifests):
    workloads = [d for _, d in manifests if d["kind"] in WORKLOADS]
    services = {d["metadata"]["name"]: d for _, d in manifests if d["kind"] == "Service"}
    assert {w["metadata"]["name"] for w in workloads} == {"mlflow", "postgres", "minio"}
    for w in workloads:
        assert _selects(w["spec"]["selector"], _template_labels(w)), w["metadata"]["name"]
        pod = w["spec"]["template"]["spec"]
        mounts = {m["name"] for c in _containers(pod) for m in c.get("volumeMounts", [])}
        claims = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
        assert mounts <= {v["name"] for v in pod.get("volumes", [])} | claims, w["metadata"]
        for c in pod["containers"]:
            names = {p["name"] for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                assert port is None or port in names, f"{c['name']} {probe} port {port}"
    for sts in (w for w in workloads if w["kind"] == "StatefulSet"):
        assert sts["spec"]["serviceName"] in services
        assert sts["spec"]["volumeClaimTemplates"], "state needs a PersistentVolumeClaim"
    for name, svc in services.items():
        selector = {"matchLabels": svc["spec"]["selector"]}
        backends = [w for w in workloads if _selects(selector, _template_labels(w))]
        assert len(backends) == 1, f"Service {name} selects {len(backends)} workloads"
        ports = [p for c in _containers(backends[0], init=False) for p in c.get("ports", [])]
        for sp in svc["spec"]["ports"]:
            target = sp.get("targetPort", sp["port"])
            assert any(target in (p.get("name"), p["containerPort"]) for p in ports), (name, target)


def _template_labels(workload):
    return workload["spec"]["template"]["metadata"]["labels"]


def _ingress_rules(manifests, labels):
    """The ingress rules of the NetworkPolicies that pick out pods with `labels`."""
    return [
        rule
        for _, d in manifests
        if d["kind"] == "NetworkPolicy" and d["spec"]["podSelector"]
        and _selects(d["spec"]["podSelector"], labels)
        for rule in d["spec"].get("ingress", [])
    ]


def _ports(rule):
    return [p["port"] for p in rule.get("ports", [])]


def test_network_policies(manifests):
    policies = [d for _, d in manifests if d["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress"], "no default-deny policy"
    mlflow = {"app.kubernetes.io/name": "mlflow"}
    head, worker = {"ray.io/node-type": "head"}, {"ray.io/node-type": "worker"}
    postgres, minio = {"app.kubernetes.io/name": "postgres"}, {"app.kubernetes.io/name": "minio"}

    def rules(labels):
        found = _ingress_rules(manifests, labels)
        assert found, f"nothing may reach {labels}"
        for rule in found:
            for peer in rule["from"]:
                assert "ipBlock" not in peer, labels
        return found

    for rule in rules(mlflow):  # the namespace only
        assert rule["from"] == [{"podSelector": {}}] and _ports(rule) == [5000]
    operator_namespace = {"kubernetes.io/metadata.name": "kuberay-system"}
    for rule in rules(head):
        for peer in rule["from"]:
            if "namespaceSelector" in peer:  # the KubeRay operator polls the dashboard
                assert peer["namespaceSelector"]["matchLabels"] == operator_namespace
                assert _ports(rule) == [8265]
    only_from = [
        (worker, [head, worker], None),
        (postgres, [mlflow], 5432),
        (minio, [mlflow, head, worker], 9000),
    ]
    for labels, allowed, port in only_from:
        for rule in rules(labels):
            for peer in rule["from"]:
                assert set(peer) == {"podSelector"} and peer["podSelector"], (labels, peer)
                assert not _selects(peer["podSelector"], {}), f"{labels} open to any pod"
                assert any(_selects(peer["podSelector"], a) for a in allowed), (labels, peer)
            assert port is None or _ports(rule) == [port]


# --- MLflow server -------------------------------------------------------------------------


def test_mlflow_server_configuration(manifests):
    deployment = _one(manifests, "Deployment", "mlflow")
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    argv = server["command"] + server["args"]
    opts = dict(a.split("=", 1) if "=" in a else (a, "") for a in argv[2:])
    assert argv[:2] == ["mlflow", "server"]
    assert opts["--backend-store-uri"].startswith("postgresql")
    assert opts["--artifacts-destination"].startswith("s3://")
    assert "--serve-artifacts" in opts and opts["--app-name"] == "basic-auth"
    assert opts["--host"] == "0.0.0.0"
    assert int(opts["--port"]) == server["ports"][0]["containerPort"]
    allowed = opts["--allowed-hosts"].split(",")
    for host in ("mlflow:5000", "mlflow.scalestudy.svc.cluster.local:5000", "localhost:5000"):
        assert any(fnmatch.fnmatchcase(host, a) if "*" in a else host == a for a in allowed), host
    env = _env(server)
    required = {
        "PGUSER", "PGPASSWORD", "MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_AUTH_ADMIN_USERNAME",
        "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_S3_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    }
    assert required <= set(env), required - set(env)
    ini_path = Path(env["MLFLOW_AUTH_CONFIG_PATH"]["value"])
    (mount,) = [m for m in server["volumeMounts"] if Path(m["mountPath"]) == ini_path.parent]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == mount["name"]]
    config_map = _one(manifests, "ConfigMap", volume["configMap"]["name"])
    ini = configparser.ConfigParser()
    ini.read_string(config_map["data"][ini_path.name])
    assert ini["mlflow"]["database_uri"].startswith("postgresql")
    assert "admin_password" not in ini["mlflow"], "the admin password comes from a Secret"


@pytest.mark.slow  # importing mlflow.cli takes several seconds
def test_mlflow_server_flags_exist_in_mlflow(manifests):
    cli = pytest.importorskip("mlflow.cli")
    (server,) = _one(manifests, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"]
    assert server["command"] == ["mlflow", "server"]
    cli.server.make_context("server", list(server["args"]))  # raises on an option MLflow lacks


# --- README --------------------------------------------------------------------------------


def test_readme_paths_exist():
    readme = (K8S / "README.md").read_text()
    assert "Run on Kubernetes" in readme
    paths = set(re.findall(r"\bk8s/[\w./-]*\w", readme))
    assert paths
    for rel in paths:
        path = REPO / rel
        if path.suffix == ".env":  # made by generate.sh, gitignored
            assert (path.parent / f"{path.name}.example").is_file(), rel
        else:
            assert path.exists(), f"k8s/README.md names {rel}, which does not exist"
    for target in re.findall(r"kubectl (?:apply|delete)[^\n`]* -k ([\w./-]+)", readme):
        assert (REPO / target / "kustomization.yaml").is_file(), target
