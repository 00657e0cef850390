"""Check the wheel-building setup as far as a Linux machine without containers can.

    python .ci/check_cibuildwheel.py --workflow .github/workflows/wheels.yml \
        --package dist/elman-X.tar.gz

1. The workflow parses as YAML and has the three jobs: one that builds the sdist
   and uploads it, one that builds wheels with cibuildwheel on each platform FROM
   that sdist, and one that uploads the artefacts.
2. `cibuildwheel --print-build-identifiers`, reading [tool.cibuildwheel] from the
   package given (the sdist, as the workflow does), lists exactly the intended
   builds for linux, macos and windows; and the workflow's matrix, job by job,
   covers all of them, each job on its own architecture.

Needs PyYAML and cibuildwheel (same version as the workflow pins) importable /
on PATH from the running interpreter's environment.
"""

import argparse
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


def check_workflow(path, problems):
    with open(path, encoding="utf-8") as f:
        workflow = yaml.safe_load(f)
    jobs = workflow.get("jobs") or {}
    print(f"  {path}: valid YAML, jobs: {', '.join(jobs)}")
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    triggers = workflow.get("on", workflow.get(True))
    if not triggers:
        problems.append("workflow: no triggers (on:)")

    def needs(job):
        value = job.get("needs", [])
        return [value] if isinstance(value, str) else list(value)

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

    matrix = wheel_job.get("strategy", {}).get("matrix", {}).get("include", [])
    entries = []
    for entry in matrix:
        platform = RUNNER_PLATFORM.get(str(entry.get("os", "")).split("-")[0])
        if platform is None or "archs" not in entry:
            problems.append(f"workflow: matrix entry {entry} has no known os or no archs")
            continue
        entries.append((entry["os"], platform, str(entry["archs"])))
    return entries


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
    parser.add_argument("--package", required=True, help="the sdist (or project directory)")
    args = parser.parse_args()
    problems = []
    entries = check_workflow(args.workflow, problems)
    check_builds(args.package, entries, problems)
    for p in problems:
        print(f"  PROBLEM {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
