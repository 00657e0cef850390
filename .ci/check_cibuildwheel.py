"""Check the wheel-building setup as far as a Linux machine without containers can.

    python .ci/check_cibuildwheel.py --workflow .github/workflows/wheels.yml \
        --package dist/elman-X.tar.gz

1. The workflow parses as YAML and has the three jobs: one that builds the sdist
   and uploads it, one that builds wheels with cibuildwheel on each platform FROM
   that sdist, and one that uploads the artefacts.
2. The publish job: it runs only on a pushed version tag (the workflow is
   triggered by v* tags, and the job's `if` requires a refs/tags/v ref), after the
   sdist, wheels and checking jobs; it publishes the checked artefact with
   pypa/gh-action-pypi-publish by trusted publishing (`id-token: write`, the
   `pypi` environment), with no password, token or secret anywhere in the job.
3. `cibuildwheel --print-build-identifiers`, reading [tool.cibuildwheel] from the
   package given (the sdist, as the workflow does), lists exactly the intended
   builds for linux, macos and windows; and the workflow's matrix, job by job,
   covers all of them, each job on its own architecture.

    python .ci/check_cibuildwheel.py --workflow .github/workflows/wheels.yml --self-test

checks that the workflow checks can fail: each of a list of defects, applied to a
copy of the workflow, must be reported (cibuildwheel is not needed for that).

Needs PyYAML and cibuildwheel (same version as the workflow pins) importable /
on PATH from the running interpreter's environment.
"""

import argparse
import contextlib
import copy
import io
import os
import subprocess
import sys

import yaml

# The intended builds: every CPython that current NumPy releases support (NumPy 2.4:
# 3.11-3.14, NumPy 2.5: 3.12-3.15), no PyPy, no free-threaded builds yet, on
# manylinux x86_64/aarch64, macOS x86_64/arm64 and Windows AMD64. Written out rather
# than derived, so that a change of requires-python, of skip, or of the pinned
# cibuildwheel's interpreter list shows up here as a decision to make.
PYTHONS = ["cp311", "cp312", "cp313", "cp314", "cp315"]
PLATFORM_TAGS = {
    "linux": ["manylinux_x86_64", "manylinux_aarch64"],
    "macos": ["macosx_x86_64", "macosx_arm64"],
    "windows": ["win_amd64"],
}
INTENDED = {
    platform: {f"{py}-{tag}" for py in PYTHONS for tag in tags}
    for platform, tags in PLATFORM_TAGS.items()
}
RUNNER_PLATFORM = {"ubuntu": "linux", "macos": "macos", "windows": "windows"}


def uses(step, action):
    return str(step.get("uses", "")).startswith(action + "@")


def runs(step, text):
    return text in str(step.get("run", ""))


def needs(job):
    value = job.get("needs", [])
    return [value] if isinstance(value, str) else list(value)


def load_workflow(path):
    with open(path, encoding="utf-8") as f:
        workflow = yaml.safe_load(f)
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def check_workflow(path, problems):
    return check_workflow_data(load_workflow(path), problems, path)


def check_workflow_data(workflow, problems, path="workflow"):
    jobs = workflow.get("jobs") or {}
    print(f"  {path}: valid YAML, jobs: {', '.join(jobs)}")
    triggers = workflow.get("on")
    if not triggers:
        problems.append("workflow: no triggers (on:)")

    sdist_jobs = [
        name for name, job in jobs.items()
        if any(runs(s, "build --sdist") for s in job.get("steps", []))
        and any(uses(s, "actions/upload-artifact") for s in job.get("steps", []))
    ]
    if len(sdist_jobs) != 1:
        problems.append(f"workflow: expected one job that builds and uploads the sdist, "
                        f"found {sdist_jobs}")
        return []
    sdist_job = sdist_jobs[0]

    wheel_jobs = [
        name for name, job in jobs.items()
        if any(uses(s, "pypa/cibuildwheel") for s in job.get("steps", []))
    ]
    if len(wheel_jobs) != 1:
        problems.append(f"workflow: expected one cibuildwheel job, found {wheel_jobs}")
        return []
    wheel_job_name = wheel_jobs[0]
    wheel_job = jobs[wheel_job_name]
    steps = wheel_job.get("steps", [])
    cibw = next(s for s in steps if uses(s, "pypa/cibuildwheel"))
    if sdist_job not in needs(wheel_job):
        problems.append(f"workflow: {wheel_job_name} does not need {sdist_job}")
    if not any(uses(s, "actions/download-artifact") for s in steps[: steps.index(cibw)]):
        problems.append(f"workflow: {wheel_job_name} does not download the sdist "
                        "before building")
    if any(uses(s, "actions/checkout") for s in steps):
        # Building from a checkout would hide a file missing from the sdist.
        problems.append(f"workflow: {wheel_job_name} checks out the repository; wheels "
                        "must be built from the sdist alone")
    package_dir = str((cibw.get("with") or {}).get("package-dir", ""))
    if "sdist" not in package_dir:
        problems.append(f"workflow: cibuildwheel's package-dir {package_dir!r} is not the sdist")
    if "matrix.archs" not in str((cibw.get("env") or {}).get("CIBW_ARCHS", "")):
        problems.append("workflow: cibuildwheel step does not set CIBW_ARCHS from the matrix")
    if not any(uses(s, "actions/upload-artifact") for s in steps):
        problems.append(f"workflow: {wheel_job_name} does not upload its wheels")

    upload_jobs = [
        name for name, job in jobs.items()
        if wheel_job_name in needs(job)
        and any(uses(s, "actions/upload-artifact") for s in job.get("steps", []))
    ]
    if not upload_jobs:
        problems.append("workflow: no job after the wheels that uploads the artefacts")
    print(f"  jobs: sdist = {sdist_job}, wheels per platform = {wheel_job_name} "
          f"(cibuildwheel {cibw['uses'].split('@')[1]}, package-dir {package_dir}), "
          f"upload = {', '.join(upload_jobs) or '-'}")
    check_publish(workflow, [sdist_job, wheel_job_name] + upload_jobs, problems)

    matrix = wheel_job.get("strategy", {}).get("matrix", {}).get("include", [])
    entries = []
    for entry in matrix:
        platform = RUNNER_PLATFORM.get(str(entry.get("os", "")).split("-")[0])
        if platform is None or "archs" not in entry:
            problems.append(f"workflow: matrix entry {entry} has no known os or no archs")
            continue
        entries.append((entry["os"], platform, str(entry["archs"])))
    return entries


def check_publish(workflow, earlier_jobs, problems):
    """The publish job: tag-only, after the checks, trusted publishing, no secret."""
    jobs = workflow.get("jobs") or {}
    publish_jobs = [
        name for name, job in jobs.items()
        if any(uses(s, "pypa/gh-action-pypi-publish") for s in job.get("steps", []))
    ]
    if len(publish_jobs) != 1:
        problems.append(f"publish: expected one job that runs pypa/gh-action-pypi-publish, "
                        f"found {publish_jobs}")
        return
    name = publish_jobs[0]
    job = jobs[name]
    steps = job.get("steps", [])

    # Triggered by version tags, and run for them only.
    triggers = workflow.get("on") or {}
    push = triggers.get("push") if isinstance(triggers, dict) else None
    tags = [str(t) for t in ((push or {}).get("tags") or [])]
    if not any(t.startswith("v") for t in tags):
        problems.append("publish: the workflow is not triggered by pushed version tags "
                        "(on: push: tags: [\"v*\"])")
    condition = str(job.get("if", "")).replace('"', "'").replace(" ", "")
    if "startsWith(github.ref,'refs/tags/v')" not in condition:
        problems.append(f"publish: job {name} is not limited to version tags (its `if` "
                        f"lacks startsWith(github.ref, 'refs/tags/v'))")

    # After everything that builds and checks.
    missing = [j for j in earlier_jobs if j not in needs(job)]
    if missing:
        problems.append(f"publish: job {name} does not need {missing}: it could publish "
                        f"unchecked files")
    download = next((i for i, s in enumerate(steps) if uses(s, "actions/download-artifact")),
                    None)
    publish_at = next(i for i, s in enumerate(steps) if uses(s, "pypa/gh-action-pypi-publish"))
    if download is None or download > publish_at:
        problems.append(f"publish: job {name} does not download the checked artefact "
                        f"before publishing")
    if any(uses(s, "actions/checkout") or "run" in s for s in steps):
        problems.append(f"publish: job {name} checks out or builds something; it must "
                        f"publish the checked artefact as it is")

    # Trusted publishing: an OIDC token, an environment PyPI can pin, no secret.
    permissions = job.get("permissions")
    if not isinstance(permissions, dict) or permissions.get("id-token") != "write":
        problems.append(f"publish: job {name} lacks `permissions: id-token: write` "
                        f"(trusted publishing)")
    elif any(v == "write" for k, v in permissions.items() if k != "id-token"):
        problems.append(f"publish: job {name} has write permissions beyond id-token: "
                        f"{permissions}")
    environment = job.get("environment")
    environment = environment.get("name") if isinstance(environment, dict) else environment
    if environment != "pypi":
        problems.append(f"publish: job {name} does not run in the `pypi` environment "
                        f"(got {environment!r})")
    inputs = steps[publish_at].get("with") or {}
    stored = sorted(k for k in inputs if k in ("password", "user", "username", "api-token"))
    if stored:
        problems.append(f"publish: the publish step is given {stored}: trusted publishing "
                        f"needs no stored credential")
    if "secrets." in str(job):
        problems.append(f"publish: job {name} uses a stored secret")
    print(f"  publish = {name}: on v* tags only, after {', '.join(needs(job))}, "
          f"{steps[publish_at]['uses']}, environment {environment!r}, "
          f"id-token: {(permissions or {}).get('id-token') if isinstance(permissions, dict) else '-'}")


def _defects():
    """Ways to break the publish job (and its trigger), each of which must be caught."""
    def publish(workflow):
        return next(job for job in workflow["jobs"].values()
                    if any(uses(s, "pypa/gh-action-pypi-publish") for s in job["steps"]))

    def step(workflow):
        return next(s for s in publish(workflow)["steps"]
                    if uses(s, "pypa/gh-action-pypi-publish"))

    def set_with(workflow, key, value):
        step(workflow).setdefault("with", {})[key] = value

    return {
        "publish on every push": lambda w: publish(w).pop("if"),
        "no version-tag trigger": lambda w: w["on"]["push"].pop("tags"),
        "no id-token permission": lambda w: publish(w).pop("permissions"),
        "write access to the repository": lambda w: publish(w)["permissions"].update(
            contents="write"),
        "no pypi environment": lambda w: publish(w).pop("environment"),
        "a stored password": lambda w: set_with(w, "password",
                                                "${{ secrets.PYPI_API_TOKEN }}"),
        "a stored token in the environment": lambda w: step(w).update(
            env={"TWINE_PASSWORD": "${{ secrets.PYPI_TOKEN }}"}),
        "not after the checking job": lambda w: publish(w).update(needs=["sdist", "wheels"]),
        "nothing downloaded": lambda w: publish(w).update(
            steps=[s for s in publish(w)["steps"] if not uses(s, "actions/download-artifact")]),
        "rebuilds before publishing": lambda w: publish(w)["steps"].insert(
            0, {"run": "python -m build"}),
        "no publish job": lambda w: w["jobs"].pop(
            next(n for n, j in w["jobs"].items() if j is publish(w))),
    }


def self_test(path):
    """Each defect applied to a copy of the workflow must give a problem."""
    original = load_workflow(path)
    problems = []
    with contextlib.redirect_stdout(io.StringIO()):
        check_workflow_data(copy.deepcopy(original), problems, path)
    if problems:
        print("  self-test: the workflow itself has problems:", *problems, sep="\n    ")
        return 1
    missed = []
    for defect, apply in _defects().items():
        workflow = copy.deepcopy(original)
        apply(workflow)
        found = []
        with contextlib.redirect_stdout(io.StringIO()):
            check_workflow_data(workflow, found, defect)
        if found:
            print(f"  self-test: {defect}: caught ({found[0]})")
        else:
            missed.append(defect)
            print(f"  PROBLEM self-test: {defect}: not caught")
    print(f"  self-test: {len(_defects()) - len(missed)} of {len(_defects())} defects caught")
    return 1 if missed else 0


def identifiers(package, platform, archs=None):
    command = ["cibuildwheel", "--print-build-identifiers", "--platform", platform]
    if archs:
        command += ["--archs", archs]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
    result = subprocess.run(command + [package], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def check_builds(package, entries, problems):
    for platform, intended in INTENDED.items():
        listed = identifiers(package, platform)
        print(f"  {platform}: {len(listed)} builds: {' '.join(listed)}")
        if set(listed) != intended:
            missing, extra = sorted(intended - set(listed)), sorted(set(listed) - intended)
            problems.append(f"cibuildwheel {platform}: missing {missing}, unintended {extra}")

    covered = set()
    for runner, platform, archs in entries:
        listed = identifiers(package, platform, archs)
        covered.update(listed)
        print(f"  workflow job {runner} (--archs {archs}): {len(listed)} builds")
        if not listed:
            problems.append(f"workflow job {runner}: builds nothing")
    everything = set().union(*INTENDED.values())
    if entries and covered != everything:
        problems.append(f"workflow matrix: misses {sorted(everything - covered)}, "
                        f"adds {sorted(covered - everything)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflow", required=True)
    parser.add_argument("--package", help="the sdist (or project directory)")
    parser.add_argument("--self-test", action="store_true",
                        help="apply known defects to the workflow; each must be caught")
    args = parser.parse_args()
    if args.self_test:
        return self_test(args.workflow)
    if not args.package:
        parser.error("--package is required (except with --self-test)")
    problems = []
    entries = check_workflow(args.workflow, problems)
    check_builds(args.package, entries, problems)
    for p in problems:
        print(f"  PROBLEM {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
