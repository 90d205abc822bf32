"""Assertions on pod hardening shared by the manifest and chart tests."""

from __future__ import annotations

from typing import Any

from .conftest import containers, pod_spec


def assert_hardened(obj: dict[str, Any]) -> None:
    """Every pod spec: non-root, seccomp RuntimeDefault; every container: read-only root,
    no privilege escalation, all capabilities dropped, requests and limits, /tmp emptyDir."""
    spec = pod_spec(obj)
    assert spec is not None
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    psc = spec.get("securityContext", {})
    assert psc.get("runAsNonRoot") is True, where
    assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
    assert spec.get("automountServiceAccountToken") is False, where
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for c in containers(spec):
        cw = f"{where} container {c['name']}"
        sc = c.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, cw
        assert sc.get("readOnlyRootFilesystem") is True, cw
        assert sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, cw
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], cw
        assert not sc.get("capabilities", {}).get("add"), cw
        assert sc.get("privileged", False) is False, cw
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", cw
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        assert isinstance(uid, int) and uid > 0, cw
        res = c.get("resources", {})
        for section in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res.get(section, {})), f"{cw}: {section}"
        tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert tmp, f"{cw}: no /tmp mount"
        assert "emptyDir" in volumes[tmp[0]["name"]], f"{cw}: /tmp is not an emptyDir"
