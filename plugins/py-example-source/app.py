"""Example patch source written in Python (componentize-py), proving the WIT contract
is usable from a language other than Rust.

It knows two fixed openssl security updates (3.0.14, superseded by 3.0.15) and
returns them when some device has an `openssl` component below 3.0.15. Everything is
built in: it needs no capability beyond logging.

A device with the fact `py-example.fail = "transient"` or `"permanent"` makes
`discover` fail with that plugin-error: how a Python plugin raises one
(docs/plugin-authors.md, section 10).
"""

import hashlib
from typing import List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log
from wit_world.imports.types import (
    Artifact,
    Device,
    Patch,
    PatchKind,
    PluginError_Permanent,
    PluginError_Transient,
    PluginInfo,
    Severity,
)

NAME = "py-example-source"
VERSION = "0.1.0"
VENDOR = "py-example"
COMPONENT = "openssl"
FIXED = "3.0.15"

# 2026-10-13T00:00:00Z, the same release day as the simulated Rust catalog.
RELEASED = 1_791_849_600


def _version_key(text: str) -> Optional[Tuple[int, ...]]:
    """`3.0.11` -> (3, 0, 11); `1.1.1w` -> (1, 1, 1); None when there is no number."""
    parts = []
    for piece in text.strip().split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) if parts else None


def _below(version: str, fixed: str) -> bool:
    have = _version_key(version)
    want = _version_key(fixed)
    return have is not None and want is not None and have < want


def _patch(fixed: str, applies_to: str, severity: Severity, cves: List[str],
           supersedes: List[str], size: int) -> Patch:
    patch_id = f"{VENDOR}-{COMPONENT}-{fixed}"
    return Patch(
        id=patch_id,
        vendor=VENDOR,
        title=f"{COMPONENT} security update {fixed}",
        component=COMPONENT,
        fixed_version=fixed,
        applies_to=applies_to,
        kind=PatchKind.SECURITY,
        severity=severity,
        cves=cves,
        prerequisites=[],
        supersedes=supersedes,
        reboot_required=False,
        artifact=Artifact(
            url=f"https://updates.py-example.invalid/{COMPONENT}/{COMPONENT}_{fixed}.deb",
            # No real bytes behind this example: a stable checksum of the id.
            sha256=hashlib.sha256(patch_id.encode()).hexdigest(),
            size=size,
        ),
        released=RELEASED,
    )


def _catalog() -> List[Patch]:
    return [
        _patch("3.0.14", ">=3.0.0, <3.0.14", Severity.HIGH,
               ["CVE-2024-4603", "CVE-2024-4741"], [], 2_273_280),
        _patch(FIXED, ">=3.0.0, <3.0.15", Severity.CRITICAL,
               ["CVE-2024-5535", "CVE-2024-6119"],
               [f"{VENDOR}-{COMPONENT}-3.0.14"], 2_281_472),
    ]


class PatchSourceApi(exports.PatchSourceApi):
    def info(self) -> PluginInfo:
        return PluginInfo(
            name=NAME,
            version=VERSION,
            description="Example patch source in Python: two fixed openssl security updates",
        )

    def discover(self, devices: List[Device]) -> List[Patch]:
        for device in devices:
            asked = dict(device.facts).get("py-example.fail")
            if asked == "transient":
                raise Err(PluginError_Transient(f"{device.id} asks for a transient failure"))
            if asked == "permanent":
                raise Err(PluginError_Permanent(f"{device.id} asks for a permanent failure"))
        affected = sum(
            1
            for device in devices
            if any(c.name == COMPONENT and _below(c.version, FIXED) for c in device.components)
        )
        if affected == 0:
            return []
        patches = _catalog()
        # One host call per discover: well inside the host-call budget.
        log.log(log.Level.INFO,
                f"{affected} of {len(devices)} devices have {COMPONENT} below {FIXED}; "
                f"reporting {len(patches)} patches")
        return patches
