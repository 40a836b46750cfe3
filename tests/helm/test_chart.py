"""The Helm chart (helm/kbsearch): rendered, linted and validated offline, and its policies checked.

helm-python-sdk bundles Helm's Go SDK (no helm binary), kubernetes-validate the Kubernetes OpenAPI
schemas. Three values sets are rendered: the chart's defaults, a production-like one and an
air-gapped one (tests/helm/values/). The Weaviate dependency cannot be downloaded here, so the
chart's own templates are what is rendered and checked; lint's only allowed finding is that
missing dependency.
"""
import functools
import ipaddress
import re
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from kubernetes_validate import utils as validate_utils

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kbsearch"
VALUES_DIR = Path(__file__).resolve().parent / "values"
VALUES = {
    "default": {},
    "production": yaml.safe_load((VALUES_DIR / "production.yaml").read_text()),
    "airgapped": yaml.safe_load((VALUES_DIR / "airgapped.yaml").read_text()),
}
RELEASE, NAMESPACE = "kb", "search"
# The Kubernetes minor versions the chart supports (Chart.yaml kubeVersion >=1.30): every one the
# installed kubernetes-validate carries schemas for, from 1.30 on.
KUBERNETES_VERSIONS = [
    version for version in validate_utils.all_versions()
    if tuple(int(part) for part in version.split(".")[:2]) >= (1, 30)
]
MISSING_DEPENDENCY = "chart directory is missing these dependencies: weaviate"
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY$|^DATABASE_URL$|_BROKER_URL$|_CACHE_URL$)")
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
QUEUES = ["sync", "embed", "train"]


@functools.cache
def _chart() -> helm.Chart:
    return helm.Chart.load(CHART)


@functools.cache
def _rendered(values_name: str) -> tuple[dict, ...]:
    manifests = _chart().render(VALUES[values_name], name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = []
    for text in manifests.values():
        objects.extend(document for document in yaml.safe_load_all(text) if document)
    return tuple(objects)


def _objects(values_name: str, kind: str | None = None) -> list[dict]:
    return [item for item in _rendered(values_name) if kind is None or item["kind"] == kind]


def _named(values_name: str, kind: str, name: str) -> dict:
    matches = [item for item in _objects(values_name, kind) if item["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name} rendered {len(matches)} times"
    return matches[0]


def _pod_specs(values_name: str) -> list[tuple[str, dict, dict]]:
    """(kind/name, pod metadata, pod spec) of every pod the chart makes."""
    pods = []
    for item in _rendered(values_name):
        if item["kind"] in ("Deployment", "Job"):
            template = item["spec"]["template"]
            pods.append((f"{item['kind']}/{item['metadata']['name']}", template["metadata"], template["spec"]))
        elif item["kind"] == "Pod":
            pods.append((f"Pod/{item['metadata']['name']}", item["metadata"], item["spec"]))
    return pods


def _containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.fixture(scope="module", autouse=True)
def _cached_schemas():
    # kubernetes-validate re-reads the multi-megabyte definitions file for every object; the
    # files never change during a run.
    original = validate_utils.schema_contents
    validate_utils.schema_contents = functools.cache(original)
    yield
    validate_utils.schema_contents = original


# --- Rendering, lint and Kubernetes schemas ------------------------------------------------------


@pytest.mark.parametrize("values_name", VALUES)
def test_helm_lint_finds_nothing_but_the_undownloaded_dependency(values_name):
    report = helm.lint(CHART, VALUES[values_name], strict=True, namespace=NAMESPACE)
    findings = {message["error"] for message in report["messages"] if message["severity"] >= 2}
    assert findings == {MISSING_DEPENDENCY}
    assert set(report["errors"]) == {MISSING_DEPENDENCY}


@pytest.mark.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values_name", VALUES)
def test_every_manifest_is_valid_kubernetes(values_name, kubernetes_version):
    for item in _rendered(values_name):
        # strict: unknown fields (a typo in a template) fail too.
        validate_utils.validate(item, kubernetes_version, strict=True)


def test_the_supported_kubernetes_versions_are_validated():
    assert KUBERNETES_VERSIONS[0] == "1.30.0"
    assert len(KUBERNETES_VERSIONS) >= 8  # 1.30 to 1.37 in kubernetes-validate 1.37.0


@pytest.mark.parametrize("values_name", VALUES)
def test_the_expected_workloads_are_rendered(values_name):
    deployments = {item["metadata"]["name"] for item in _objects(values_name, "Deployment")}
    enabled_queues = [queue for queue in QUEUES
                      if VALUES[values_name].get("workers", {}).get(queue, {}).get("enabled", queue != "train")]
    assert deployments == {"kb-kbsearch-web", "kb-kbsearch-beat", *(f"kb-kbsearch-worker-{q}" for q in enabled_queues)}
    for queue in enabled_queues:
        command = _named(values_name, "Deployment", f"kb-kbsearch-worker-{queue}")["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[:4] == ["celery", "--app", "kbsearch", "worker"]
        assert command[command.index("--queues") + 1] == queue
    web = _named(values_name, "Deployment", "kb-kbsearch-web")["spec"]["template"]["spec"]["containers"][0]
    assert web["command"][:3] == ["gunicorn", "--config", "gunicorn.conf.py"]
    assert web["command"][-1] == "kbsearch.wsgi"
    # gunicorn.conf.py derives connections and PyTorch threads from these, so they are not flags.
    assert {"--workers", "--threads"}.isdisjoint(web["command"])
    web_env = {item["name"]: item.get("value") for item in web["env"]}
    assert (web_env["KBSEARCH_WEB_WORKERS"], web_env["KBSEARCH_WEB_THREADS"]) == ("2", "2")
    assert {item["kind"] for item in _rendered(values_name)} >= {"Service", "PodDisruptionBudget", "ConfigMap", "ServiceAccount"}


# --- Pod security, resources, probes, images -----------------------------------------------------


@pytest.mark.parametrize("values_name", VALUES)
def test_every_pod_and_container_meets_the_restricted_pod_security_standard(values_name):
    for where, _metadata, spec in _pod_specs(values_name):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, where
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), where
        for container in _containers(spec):
            context = container["securityContext"]
            label = f"{where} {container['name']}"
            assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001, label
            assert context["allowPrivilegeEscalation"] is False, label
            assert context["readOnlyRootFilesystem"] is True, label
            assert context["capabilities"]["drop"] == ["ALL"] and not context["capabilities"].get("add"), label
            assert context["seccompProfile"]["type"] == "RuntimeDefault", label
            assert context.get("privileged") is not True, label
        mounts = {mount["mountPath"] for container in spec["containers"] for mount in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"


@pytest.mark.parametrize("values_name", VALUES)
def test_every_container_has_resources_and_every_server_has_probes(values_name):
    for where, _metadata, spec in _pod_specs(values_name):
        for container in _containers(spec):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), f"{where} {container['name']}"
            assert "memory" in resources["limits"], f"{where} {container['name']}"
        if where.startswith("Deployment/"):
            # Jobs and the test pod run to completion; init containers cannot have probes.
            for container in spec["containers"]:
                assert container.get("livenessProbe") and container.get("readinessProbe"), f"{where} {container['name']}"
                assert container.get("startupProbe"), f"{where} {container['name']}"


@pytest.mark.parametrize("values_name", VALUES)
def test_workers_and_beat_are_probed_by_their_heartbeat_file(values_name):
    for item in _objects(values_name, "Deployment"):
        if item["metadata"]["name"] == "kb-kbsearch-web":
            continue
        container = item["spec"]["template"]["spec"]["containers"][0]
        probe = container["livenessProbe"]["exec"]["command"]
        assert probe[:3] == ["python", "-m", "kbsearch.liveness"]
        assert int(probe[3]) >= 20
    beat = _named(values_name, "Deployment", "kb-kbsearch-beat")
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}
    assert "kbsearch.liveness:HeartbeatDatabaseScheduler" in beat["spec"]["template"]["spec"]["containers"][0]["command"]


@pytest.mark.parametrize("values_name", VALUES)
def test_images_are_pinned(values_name):
    for where, _metadata, spec in _pod_specs(values_name):
        for container in _containers(spec):
            image = container["image"]
            name, _, digest = image.partition("@")
            tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
            assert tag and tag != "latest", f"{where}: {image}"
            if digest:
                assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), image


def test_air_gapped_images_all_come_from_the_internal_registry_by_digest():
    registry = VALUES["airgapped"]["global"]["imageRegistry"]
    images = {container["image"] for _, _, spec in _pod_specs("airgapped") for container in _containers(spec)}
    assert images == {f"{registry}/mirror/kbsearch:0.1.0@{VALUES['airgapped']['image']['digest']}"}
    config = _named("airgapped", "ConfigMap", "kb-kbsearch")["data"]
    assert config["KBSEARCH_EMBEDDING_MODEL"] == "/models/e5-small-ft-2026-12"
    web = _named("airgapped", "Deployment", "kb-kbsearch-web")["spec"]["template"]["spec"]
    assert {v["name"]: v.get("persistentVolumeClaim") for v in web["volumes"]}["models"] == {"claimName": "kbsearch-models"}
    assert not _objects("airgapped", "PersistentVolumeClaim")  # the existing claim is used


def test_the_model_volume_is_read_only_for_web_and_writable_for_embed_and_train():
    def models_mount(name: str, container_index: int = 0) -> dict:
        spec = _named("production", "Deployment", name)["spec"]["template"]["spec"]
        return next(m for m in spec["containers"][container_index]["volumeMounts"] if m["name"] == "models")

    assert models_mount("kb-kbsearch-web")["readOnly"] is True
    assert models_mount("kb-kbsearch-worker-sync")["readOnly"] is True
    assert models_mount("kb-kbsearch-worker-embed")["readOnly"] is False
    assert models_mount("kb-kbsearch-worker-train")["readOnly"] is False
    web = _named("production", "Deployment", "kb-kbsearch-web")["spec"]["template"]["spec"]
    assert web["initContainers"][0]["command"] == ["python", "manage.py", "build_model"]
    claim = _named("production", "PersistentVolumeClaim", "kb-kbsearch-models")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_a_new_model_rolls_every_web_pod():
    def checksum(values: dict) -> str:
        manifests = _chart().render(values, name=RELEASE, namespace=NAMESPACE)
        web = yaml.safe_load(manifests["kbsearch/templates/web-deployment.yaml"])
        return web["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum({}) != checksum({"model": {"name": "/models/e5-small-ft-2026-12"}})
    assert checksum({}) == checksum({})


# --- Secrets and configuration -------------------------------------------------------------------


@pytest.mark.parametrize("values_name", VALUES)
def test_secrets_are_only_referenced_never_inlined(values_name):
    assert not _objects(values_name, "Secret")
    for config_map in _objects(values_name, "ConfigMap"):
        if config_map["metadata"]["name"].endswith("-helm-test"):
            continue  # the test script
        for key, value in config_map["data"].items():
            assert not SECRET_NAME.search(key), f"{key} in a ConfigMap"
            assert not CREDENTIALS_IN_URL.search(value), f"{key} holds credentials"
    for where, _metadata, spec in _pod_specs(values_name):
        for container in _containers(spec):
            for variable in container.get("env", []):
                if SECRET_NAME.search(variable["name"]):
                    assert "value" not in variable, f"{where}: {variable['name']} inlined"
                    assert "secretKeyRef" in variable["valueFrom"], f"{where}: {variable['name']}"
                else:
                    assert not CREDENTIALS_IN_URL.search(variable.get("value", "")), f"{where}: {variable['name']}"


def test_every_secret_comes_from_the_named_existing_secret():
    web = _named("production", "Deployment", "kb-kbsearch-web")["spec"]["template"]["spec"]["containers"][0]
    references = {v["name"]: v["valueFrom"]["secretKeyRef"]["name"] for v in web["env"] if "valueFrom" in v}
    assert references == {
        "KBSEARCH_SECRET_KEY": "kbsearch-prod", "DATABASE_URL": "kbsearch-prod",
        "KBSEARCH_BROKER_URL": "kbsearch-prod", "KBSEARCH_CACHE_URL": "kbsearch-prod",
        "KBSEARCH_CREDENTIALS_KEY": "kbsearch-prod", "KBSEARCH_WEAVIATE_API_KEY": "kbsearch-prod",
        "KBSEARCH_METRICS_TOKEN": "kbsearch-prod", "KBSEARCH_LDAP_CORP_PASSWORD": "kbsearch-ldap",
    }


def test_configuration_follows_the_values():
    config = _named("production", "ConfigMap", "kb-kbsearch")["data"]
    assert config["KBSEARCH_WEAVIATE_URL"] == "https://weaviate.data.example.com:443"
    assert config["KBSEARCH_INDEX_BACKEND"] == "kbsearch.index.weaviate.WeaviateIndexBackend"
    assert config["KBSEARCH_PRINCIPAL_RESOLVER"] == "access.resolvers.DirectoryPrincipalResolver"
    assert config["KBSEARCH_LDAP_SIGN_IN"] == "1"
    assert config["KBSEARCH_CSRF_TRUSTED_ORIGINS"] == "https://kb.example.com"
    assert set(config["KBSEARCH_ALLOWED_HOSTS"].split(",")) == {
        "kb-kbsearch-web", "kb-kbsearch-web.search.svc", "kb-kbsearch-web.search.svc.cluster.local", "kb.example.com",
    }
    assert config["KBSEARCH_RATE_SEARCH"] == "240/minute"
    bundled = _named("default", "ConfigMap", "kb-kbsearch")["data"]
    assert bundled["KBSEARCH_WEAVIATE_URL"] == "http://weaviate.search.svc:80"
    assert bundled["KBSEARCH_WEAVIATE_GRPC_URL"] == "weaviate-grpc.search.svc:50051"


def test_an_external_weaviate_needs_its_url():
    with pytest.raises(helm.HelmRenderError, match="index.weaviate.url is required"):
        _chart().render({"weaviate": {"enabled": False}}, name=RELEASE, namespace=NAMESPACE)


# --- Network policies ----------------------------------------------------------------------------


@pytest.mark.parametrize("values_name", VALUES)
def test_network_policies_deny_by_default_and_cover_every_pod(values_name):
    policies = _objects(values_name, "NetworkPolicy")
    default_deny = _named(values_name, "NetworkPolicy", "kb-kbsearch-default-deny")["spec"]
    assert default_deny["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "kbsearch", "app.kubernetes.io/instance": "kb"}
    assert set(default_deny["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in default_deny and "egress" not in default_deny
    covered = {p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") for p in policies}
    for where, metadata, _spec in _pod_specs(values_name):
        assert metadata["labels"]["app.kubernetes.io/component"] in covered, where
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to"), f"{policy['metadata']['name']}: an egress rule without destinations allows anywhere"
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']}: an ingress rule without sources allows anyone"


def _egress_cidrs(policy: dict) -> set[str]:
    return {peer["ipBlock"]["cidr"] for rule in policy["spec"].get("egress", []) for peer in rule["to"] if "ipBlock" in peer}


def test_production_egress_is_exactly_what_each_component_needs():
    def policy(component: str) -> dict:
        return _named("production", "NetworkPolicy", f"kb-kbsearch-{component}")

    database, redis, weaviate, ldap = {"10.20.0.10/32"}, {"10.20.0.11/32"}, {"10.20.1.0/24"}, {"10.10.0.0/28"}
    sources = {"10.30.0.0/16", "10.40.5.20/32"}
    assert _egress_cidrs(policy("web")) == database | redis | weaviate | ldap
    assert _egress_cidrs(policy("worker-sync")) == database | redis | weaviate | ldap | sources
    assert _egress_cidrs(policy("worker-embed")) == database | redis | weaviate
    assert _egress_cidrs(policy("beat")) == database | redis
    assert _egress_cidrs(policy("migrate")) == database
    for item in _objects("production", "NetworkPolicy"):
        for cidr in _egress_cidrs(item):
            assert ipaddress.ip_network(cidr).prefixlen >= 8, f"{item['metadata']['name']}: {cidr}"
    web_ingress = policy("web")["spec"]["ingress"]
    assert len(web_ingress) == 1 and web_ingress[0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert policy("worker-sync")["spec"]["ingress"] == []


def test_the_bundled_weaviate_is_reached_by_pod_label_only():
    web = _named("airgapped", "NetworkPolicy", "kb-kbsearch-web")["spec"]["egress"]
    weaviate_rules = [rule for rule in web if any("podSelector" in peer and "namespaceSelector" not in peer for peer in rule["to"])]
    assert weaviate_rules == [{"to": [{"podSelector": {"matchLabels": {"app": "weaviate"}}}],
                               "ports": [{"port": 8080, "protocol": "TCP"}, {"port": 50051, "protocol": "TCP"}]}]


# --- Service account, migrations, ingress, autoscaling, helm test ---------------------------------


@pytest.mark.parametrize("values_name", VALUES)
def test_the_service_account_mounts_no_token(values_name):
    (account,) = _objects(values_name, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("values_name", VALUES)
def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(values_name):
    (job,) = _objects(values_name, "Job")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "manage.py", "migrate", "--noinput"]
    # The ConfigMap does not exist yet when a pre-install hook runs: the same values come inline.
    config = _named(values_name, "ConfigMap", "kb-kbsearch")["data"]
    inline = {v["name"]: v["value"] for v in container["env"] if "value" in v}
    assert inline == config


def test_ingress_terminates_tls_for_the_configured_host():
    (ingress,) = _objects("production", "Ingress")
    assert ingress["spec"]["tls"] == [{"secretName": "kb-example-tls", "hosts": ["kb.example.com"]}]
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == ["kb.example.com"]
    assert not _objects("default", "Ingress")


def test_autoscaling_owns_the_web_replica_count():
    (hpa,) = _objects("production", "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    assert "replicas" not in _named("production", "Deployment", "kb-kbsearch-web")["spec"]
    assert _named("default", "Deployment", "kb-kbsearch-web")["spec"]["replicas"] == 2


@pytest.mark.parametrize("values_name", VALUES)
def test_helm_test_runs_the_search_script_in_the_kbsearch_image(values_name):
    pod = _named(values_name, "Pod", "kb-kbsearch-helm-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = _named(values_name, "ConfigMap", "kb-kbsearch-helm-test")
    assert script["metadata"]["annotations"]["helm.sh/hook"] == "test"
    source = (CHART / "files" / "helm_test_search.py").read_text()
    assert script["data"]["helm_test_search.py"] == source
    compile(source, "helm_test_search.py", "exec")
    web_image = _named(values_name, "Deployment", "kb-kbsearch-web")["spec"]["template"]["spec"]["containers"][0]["image"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == web_image
    secrets = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in container["env"] if "valueFrom" in v}
    assert set(secrets) == {"KBSEARCH_TEST_USERNAME", "KBSEARCH_TEST_PASSWORD", "KBSEARCH_TEST_TOKEN"}
    expected_secret = VALUES[values_name].get("tests", {}).get("existingSecret", "kbsearch-helm-test")
    assert {ref["name"] for ref in secrets.values()} == {expected_secret}


# --- The schema refuses bad values ---------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "message"), [
    ({"web": {"replicaCount": -1}}, "'/web/replicaCount': minimum: got -1, want 1"),
    ({"workers": {"sync": {"replicaCount": -2}}}, "'/workers/sync/replicaCount': minimum: got -2, want 0"),
    ({"workers": {"index": {"enabled": True}}}, "additional properties 'index' not allowed"),
    ({"image": {"tag": "latest"}}, "'/image/tag'"),
    ({"image": {"digest": "sha256:abc"}}, "'/image/digest'"),
    ({"config": {"extra": {"KBSEARCH_LDAP_CORP_PASSWORD": "hunter2"}}}, "invalid propertyName 'KBSEARCH_LDAP_CORP_PASSWORD'"),
    ({"containerSecurityContext": {"readOnlyRootFilesystem": False}}, "'/containerSecurityContext/readOnlyRootFilesystem'"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "'/podSecurityContext/runAsNonRoot'"),
    # null removes a default in Helm's merge: a worker without a memory request.
    ({"workers": {"embed": {"resources": {"requests": {"memory": None}}}}}, "missing property 'memory'"),
    ({"secrets": {"databaseUrl": "postgres://u:p@db/kb"}}, "additional properties 'databaseUrl' not allowed"),
])
def test_the_schema_refuses_bad_values_with_a_message_naming_them(overrides, message):
    with pytest.raises(helm.HelmValuesError) as refused:
        _chart().render(overrides, name=RELEASE, namespace=NAMESPACE)
    assert message in str(refused.value)


@pytest.mark.parametrize("values_name", VALUES)
def test_the_values_files_pass_the_schema(values_name):
    _chart().validate_schema(_chart().merge_values(VALUES[values_name]))
