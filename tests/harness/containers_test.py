#!/usr/bin/python3
"""Checks of docker-compose.yml and the Dockerfile on machines without a Docker engine.

No engine runs here, so nothing is built or started. What can be checked without one is
checked: `docker-compose config` validates and interpolates the compose file the way the engine
would read it, and the properties the design relies on are asserted on that result (io_uring
allowed, descriptor limit raised, server and client on disjoint CPUs, the model taken from the
environment, the bench service aimed at the server's port through run.py's --target, the charts
service reading the volume bench writes). The Dockerfile is read as its RUN lines: it must
install through scripts/install-deps.sh with a set the script knows and build with make targets
that exist, after copying the sources, so the image is built by exactly the steps `make` runs.

Each checker is also fed deliberately broken variants, in every run, and must object to each:
a check that cannot fail is no check.

Run by CTest (label tools) as: /usr/bin/python3 containers_test.py BIN_DIR
"""

import concurrent.futures
import copy
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import]  # Debian 12 has no types-PyYAML

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = (Path(sys.argv.pop(1)) if len(sys.argv) > 1 else ROOT / "build/bin").resolve()
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPS = ROOT / "scripts/install-deps.sh"
MIN_NOFILE = 65536


# ---------------------------------------------------------------------------------------------
# What the files may refer to: deps sets and their packages, make targets, run.py's flags.

def deps_sets():
    """The targets install-deps.sh accepts (its `case` labels) and the packages of each."""
    text = DEPS.read_text()
    arrays: dict[str, list[str]] = {}
    for name, body in re.findall(r"^(\w+)_pkgs=\(([^)]*)\)", text, re.M):
        words = []
        for word in body.split():
            ref = re.fullmatch(r'"\$\{(\w+)_pkgs\[@\]\}"', word)
            words += arrays.get(ref.group(1), []) if ref else [word]
        arrays[name] = words
    sets = {}
    case = text[text.index("case $target in"):text.index("esac")]
    for labels, array in re.findall(r"^\s*([\w|]+)\)\s*pkgs=\(\"\$\{(\w+)_pkgs", case, re.M):
        for label in labels.split("|"):
            sets[label] = arrays.get(array, [])
    return sets


def make_target_exists(target):
    result = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), target],
                            capture_output=True, text=True, timeout=60)
    return result.returncode == 0 and "No rule to make target" not in result.stderr


def run_py_flags():
    result = subprocess.run(["/usr/bin/python3", str(ROOT / "bench/run.py"), "--help"],
                            capture_output=True, text=True, timeout=30)
    return set(re.findall(r"(--[a-z][a-z-]*)", result.stdout))


def cpus(text):
    out = set()
    for part in str(text).split(","):
        lo, _, hi = part.strip().partition("-")
        out |= set(range(int(lo), int(hi or lo) + 1))
    return out


# ---------------------------------------------------------------------------------------------
# The checkers: each returns the list of problems it found (empty: fine).

def compose_config(path, env=None):
    """`docker-compose config` of a file: (parsed config or None, stderr)."""
    result = subprocess.run(["docker-compose", "-f", str(path), "config"], capture_output=True,
                            text=True, timeout=60, env=env, cwd=path.parent)
    if result.returncode != 0:
        return None, result.stderr.strip()
    return yaml.safe_load(result.stdout), result.stderr


def nofile(service):
    limit = (service.get("ulimits") or {}).get("nofile")
    if isinstance(limit, dict):
        return int(limit.get("soft", 0)), int(limit.get("hard", 0))
    return (int(limit), int(limit)) if limit is not None else (0, 0)


def compose_problems(cfg, model="epoll_et", flags=None, packages=()):
    problems = []
    services = cfg.get("services", {})
    for name in ("server", "bench", "charts"):
        if name not in services:
            problems.append(f"no '{name}' service")
    if problems:
        return problems
    server, bench, charts = services["server"], services["bench"], services["charts"]

    # io_uring: Docker's default seccomp profile refuses its three system calls.
    opts = server.get("security_opt") or []
    allowed = any(re.fullmatch(r"seccomp[=:]unconfined", o) for o in opts)
    for o in opts:
        profile = re.fullmatch(r"seccomp[=:](.+\.json)", o)
        path = Path(profile.group(1)) if profile else None
        if path and path.exists() and "io_uring_setup" in path.read_text():
            allowed = True
    if not allowed:
        problems.append("server: seccomp neither unconfined nor a profile allowing io_uring")

    for name in ("server", "bench"):
        soft, hard = nofile(services[name])
        if soft < MIN_NOFILE or hard < soft:
            problems.append(f"{name}: nofile soft {soft} hard {hard} (want soft >= {MIN_NOFILE})")

    if "cpuset" not in server or "cpuset" not in bench:
        problems.append("server and bench need a cpuset each")
    elif cpus(server["cpuset"]) & cpus(bench["cpuset"]):
        problems.append(
            f"server cpuset {server['cpuset']} and bench cpuset {bench['cpuset']} overlap")

    argv = shlex.split(server.get("command") if isinstance(server.get("command"), str)
                       else " ".join(server.get("command") or []))
    binary = argv[0] if argv else ""
    if binary != f"build/bin/server_{model}":
        problems.append(f"server: command runs '{binary}', not the model from MODEL ({model})")
    elif not (BIN_DIR / Path(binary).name).exists():
        problems.append(f"server: {binary} is not something the build makes")
    port = argv[argv.index("--port") + 1] if "--port" in argv else None
    if "--bind" not in argv or argv[argv.index("--bind") + 1] != "0.0.0.0":
        problems.append("server: must bind 0.0.0.0 to be reached from the bench container")

    health = (server.get("healthcheck") or {}).get("test") or []
    probe = health[1] if len(health) > 1 and health[0] in ("CMD", "CMD-SHELL") else None
    if probe and packages and probe.split()[0] not in packages:
        problems.append(f"server healthcheck runs '{probe}', not installed by the image's deps set")

    bargv = shlex.split(bench.get("command") or "")
    if "bench/run.py" not in bargv:
        problems.append("bench: does not run bench/run.py")
    if "--target" not in bargv or bargv[bargv.index("--target") + 1] != f"server:{port}":
        problems.append(f"bench: not aimed at the server (want --target server:{port})")
    unknown = [a for a in bargv if a.startswith("--") and flags is not None and a not in flags]
    if unknown:
        problems.append(f"bench: run.py has no {', '.join(unknown)}")
    if "server" not in (bench.get("depends_on") or {}):
        problems.append("bench: does not depend on server")

    results = bargv[bargv.index("--results-dir") + 1] if "--results-dir" in bargv else None
    mounts = {v.split(":")[1]: v.split(":")[0] for v in bench.get("volumes") or []}
    cmounts = {v.split(":")[1]: v.split(":")[0] for v in charts.get("volumes") or []}
    if results not in mounts or cmounts.get(results) != mounts.get(results):
        problems.append("bench's --results-dir is not a volume that charts mounts too")
    cargv = shlex.split(charts.get("command") or "")
    if cargv[:2] != ["make", "charts"] or f"RESULTS={results}/latest" not in cargv:
        problems.append(f"charts: does not run 'make charts RESULTS={results}/latest'")
    return problems


def dockerfile_problems(text, sets, target_exists):
    problems = []
    lines = re.sub(r"\\\n", " ", text).splitlines()
    instructions = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if not instructions or instructions[0] != "FROM debian:bookworm":
        problems.append("the base is not debian:bookworm (Debian 12)")
    copied_script = copied_all = installed = built = False
    for ins in instructions:
        word, _, rest = ins.partition(" ")
        if word == "COPY":
            srcs = rest.split()[:-1]
            copied_script |= "scripts/install-deps.sh" in srcs or "." in srcs
            copied_all |= "." in srcs
        if word != "RUN":
            continue
        for match in re.finditer(r"scripts/install-deps\.sh\s+(\S+)", rest):
            if match.group(1) not in sets:
                problems.append(f"install-deps.sh has no set '{match.group(1)}'")
            elif not copied_script:
                problems.append("install-deps.sh runs before it is copied into the image")
            else:
                installed = True
        if re.search(r"apt-get\s+install|pip3?\s+install|curl\s|wget\s", rest):
            problems.append(f"installs outside install-deps.sh: {rest}")
        for match in re.finditer(r"\bmake\s+((?:[\w-]+\s*)+)", rest):
            for target in match.group(1).split():
                if not target_exists(target):
                    problems.append(f"make has no target '{target}'")
                elif not installed or not copied_all:
                    problems.append(f"make {target} runs before the packages or sources are in")
                elif target == "build":
                    built = True
    if not installed:
        problems.append("nothing runs scripts/install-deps.sh")
    if not built:
        problems.append("nothing runs 'make build'")
    return problems


# ---------------------------------------------------------------------------------------------

def broken_compose_variants(cfg, unset_cfg):
    """name -> (a config broken in one way, what the checker must say). `cfg` is the file as
    read with MODEL=io_uring, `unset_cfg` as read without MODEL. Broken after parsing, so two
    `docker-compose config` runs serve them all."""
    def broken(change):
        c = copy.deepcopy(cfg)
        change(c["services"])
        return c

    def replace(service, key, old, new):
        return lambda s: s[service].__setitem__(key, s[service][key].replace(old, new))
    return {
        "no seccomp": (broken(lambda s: s["server"].pop("security_opt")), "seccomp"),
        "same cpus": (broken(lambda s: s["bench"].__setitem__("cpuset", s["server"]["cpuset"])),
                      "overlap"),
        "nofile left low": (broken(lambda s: s["server"]["ulimits"].__setitem__(
            "nofile", {"soft": 1024, "hard": 4096})), "nofile"),
        "wrong port": (broken(replace("bench", "command", "server:8080", "server:9090")),
                       "not aimed"),
        # The command ignores MODEL: what runs is not the io_uring asked for.
        "model fixed": (unset_cfg, "MODEL"),
        "unknown run.py flag": (
            broken(replace("bench", "command", "--results-dir", "--result-dir")),
            "run.py has no"),
        "charts elsewhere": (broken(replace("charts", "command", "RESULTS=/iolab/results/latest",
                                            "RESULTS=/tmp/x")), "charts"),
        "bench not waiting": (broken(lambda s: s["bench"].pop("depends_on")), "depend"),
    }


class Compose(unittest.TestCase):
    flags: set[str]
    packages: set[str]
    tmp: "tempfile.TemporaryDirectory[str]"
    broken_yaml: str
    configs: dict[tuple[str, str | None], Any]

    @classmethod
    def setUpClass(cls) -> None:
        if shutil.which("docker-compose") is None:
            raise unittest.SkipTest(
                "docker-compose is not installed (scripts/install-deps.sh test)")
        cls.flags = run_py_flags()
        cls.packages = set(deps_sets()["all"])
        cls.tmp = tempfile.TemporaryDirectory(prefix="iolab-containers-")
        # The `docker-compose config` runs this class needs, side by side: each is about a
        # second of Python start-up.
        text = COMPOSE.read_text()
        cls.broken_yaml = text.replace("services:", "services: [")
        wanted = [(text, None), (text, "io_uring"), (cls.broken_yaml, None)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            cls.configs = dict(zip(wanted, pool.map(lambda k: cls.config_of(*k), wanted)))

    @classmethod
    def config_of(cls, text, env_model):
        folder = Path(tempfile.mkdtemp(dir=cls.tmp.name))
        path = folder / "docker-compose.yml"
        path.write_text(text)
        env = {"PATH": "/usr/bin:/bin"}
        if env_model:
            env["MODEL"] = env_model
        return compose_config(path, env)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def problems(self, cfg, model="epoll_et"):
        return compose_problems(cfg, model, self.flags, self.packages)

    def test_compose_file_is_valid_and_complete(self) -> None:
        cfg, err = self.configs[(COMPOSE.read_text(), None)]
        self.assertIsNotNone(cfg, err)
        self.assertEqual(self.problems(cfg), [])
        self.assertTrue(make_target_exists("charts"), "the charts service runs 'make charts'")

    def test_model_comes_from_the_environment(self) -> None:
        cfg, err = self.configs[(COMPOSE.read_text(), "io_uring")]
        self.assertIsNotNone(cfg, err)
        self.assertEqual(self.problems(cfg, "io_uring"), [])

    def test_invalid_file_is_refused_by_docker_compose(self) -> None:
        cfg, err = self.configs[(self.broken_yaml, None)]
        self.assertIsNone(cfg)
        self.assertTrue(err)

    def test_broken_variants_are_caught(self) -> None:
        cfg = self.configs[(COMPOSE.read_text(), "io_uring")][0]
        unset_cfg = self.configs[(COMPOSE.read_text(), None)][0]
        for name, (variant, expected) in broken_compose_variants(cfg, unset_cfg).items():
            with self.subTest(name):
                self.assertNotEqual(variant, cfg, f"variant '{name}' changed nothing")
                problems = self.problems(variant, "io_uring")
                self.assertTrue(any(expected in p for p in problems), f"{name}: {problems}")


class Dockerfile(unittest.TestCase):
    sets: dict[str, list[str]]

    @classmethod
    def setUpClass(cls) -> None:
        cls.sets = deps_sets()

    def problems(self, text):
        return dockerfile_problems(text, self.sets, make_target_exists)

    def test_deps_sets_are_read(self) -> None:
        # The parser of install-deps.sh is itself checked: 'test' must hold its build packages.
        self.assertIn("build", self.sets)
        self.assertIn("cmake", self.sets["test"])
        self.assertIn("curl", self.sets["all"])

    def test_builds_with_the_steps_make_runs(self) -> None:
        self.assertEqual(self.problems(DOCKERFILE.read_text()), [])

    def test_one_image_has_every_service_s_packages(self) -> None:
        # bench and charts run in the same image: its deps set must hold both, or `make charts`
        # would try to install packages in a container at run time.
        runs = [ln for ln in re.sub(r"\\\n", " ", DOCKERFILE.read_text()).splitlines()
                if ln.startswith("RUN ")]
        used = [s for ln in runs for s in re.findall(r"scripts/install-deps\.sh\s+(\w+)", ln)]
        self.assertEqual(len(used), 1, used)
        image = set(self.sets[used[0]])
        for needed in ("build", "bench", "charts"):
            self.assertEqual(set(self.sets[needed]) - image, set(), f"{needed} packages")

    def test_ignores_the_host_build_tree(self) -> None:
        # A host build/ copied in would bring a CMakeCache.txt naming the host's paths.
        ignored = (ROOT / ".dockerignore").read_text().split()
        self.assertIn("build/", ignored)
        self.assertIn("build-*/", ignored)

    def test_broken_variants_are_caught(self) -> None:
        text = DOCKERFILE.read_text()
        variants = {
            "other base": (text.replace("FROM debian:bookworm", "FROM ubuntu:22.04"), "bookworm"),
            "unknown set": (text.replace("install-deps.sh all", "install-deps.sh everything"),
                            "no set"),
            "apt-get by hand": (text.replace("scripts/install-deps.sh all",
                                             "apt-get install -y g++ cmake"), "outside"),
            "missing target": (text.replace("RUN make build", "RUN make build-all"), "no target"),
            "make before copy": (text.replace("COPY . .\n", "").replace(
                "RUN make build", "RUN make build\nCOPY . ."), "before"),
            "no build": (text.replace("RUN make build\n", ""), "make build"),
        }
        for name, (variant, expected) in variants.items():
            with self.subTest(name):
                self.assertNotEqual(variant, text, f"variant '{name}' changed nothing")
                problems = self.problems(variant)
                self.assertTrue(any(expected in p for p in problems), f"{name}: {problems}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
