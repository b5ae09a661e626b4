#!/usr/bin/env python3
"""Generate the Higress ``spec.yaml`` of the plugin image from
``plugin-config-schema.json`` (and the version from ``Cargo.toml``), so the
two cannot drift: ``spec.yaml`` is never edited by hand.

Higress's image spec (https://higress.cn/docs/latest/user/wasm-image-spec,
``hgctl/pkg/plugin/types/meta.go``) wants::

    apiVersion: 1.0.0
    info: {category, name, title, x-title-i18n, description, x-description-i18n,
           iconUrl, version, contact}
    spec: {phase, priority, configSchema: {openAPIV3Schema: <OpenAPI v3 schema>}}

``openAPIV3Schema`` is the OpenAPI 3.0 schema dialect (the Kubernetes one):
no ``$ref``/``$defs``, no ``const``, no ``if``/``then``, a single ``type``.
:func:`to_openapi` rewrites our JSON Schema 2020-12 into it without losing
a constraint (``$ref`` inlined, ``const`` -> one-value ``enum``, ``if A then
B`` -> ``anyOf [not A, B]``, ...). A keyword it does not know is an error,
so a new schema keyword cannot silently vanish from the image.

Usage: scripts/higress_spec.py [-o spec.yaml]   (stdout by default)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "plugin-config-schema.json"
CARGO = ROOT / "Cargo.toml"
HIGRESS_MANIFEST = ROOT / "deploy" / "higress-wasmplugin.yaml"

# Higress's default icon for the "auth" category (hgctl types.IconAuth).
ICON_AUTH = "https://img.alicdn.com/imgextra/i4/O1CN01BPFGlT1pGZ2VDLgaH_!!6000000005333-2-tps-42-42.png"
TITLE_ZH = "Edge Auth 认证鉴权"
DESCRIPTION_ZH = (
    "网关内的认证插件：OAuth2 客户端凭证令牌端点、JWT/JWKS 校验、调用方（consumer）白名单与 Higress "
    "_rules_、浏览器 OIDC 单点登录。配置与 MSE/Higress oauth 插件兼容。"
)

# Keywords copied as they are: they mean the same in OpenAPI 3.0.
SAME = {
    "type", "title", "description", "default", "enum", "format", "pattern",
    "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
    "uniqueItems", "minProperties", "maxProperties", "required", "multipleOf",
}
# Keywords whose value is one schema, or a list/map of schemas.
SUB_ONE = {"items", "not"}
SUB_LIST = {"oneOf", "anyOf", "allOf"}
# Annotations that mean nothing in the image.
DROPPED = {"$schema", "$id", "$defs", "$comment"}


def cargo_version() -> str:
    return tomllib.loads(CARGO.read_text())["package"]["version"]


def cargo_description() -> str:
    return tomllib.loads(CARGO.read_text())["package"]["description"]


def phase_and_priority() -> tuple[str, int]:
    """The phase and priority the shipped Higress manifest uses, so the
    console and the manifest place the plugin the same way."""
    text = HIGRESS_MANIFEST.read_text()
    phase = re.search(r"^\s+phase:\s*(\S+)", text, re.M)
    priority = re.search(r"^\s+priority:\s*(\d+)", text, re.M)
    if not phase or not priority:
        raise SystemExit(f"{HIGRESS_MANIFEST}: no spec.phase / spec.priority")
    return phase.group(1), int(priority.group(1))


class SchemaError(ValueError):
    pass


def resolve_ref(ref: str, defs: dict[str, Any], where: str) -> Any:
    """The node a local ``#/$defs/...`` JSON pointer names (e.g.
    ``#/$defs/oidc/properties/cookie_secret``); anything else is refused."""
    m = re.fullmatch(r"#/\$defs/([A-Za-z0-9_]+)((?:/[A-Za-z0-9_]+)*)", ref)
    if not m or m.group(1) not in defs:
        raise SchemaError(f"{where}: unsupported $ref {ref!r}")
    node: Any = defs[m.group(1)]
    for part in filter(None, m.group(2).split("/")):
        if not isinstance(node, dict) or part not in node:
            raise SchemaError(f"{where}: unsupported $ref {ref!r}")
        node = node[part]
    return node


def to_openapi(node: Any, defs: dict[str, Any], where: str = "#") -> Any:
    """One JSON Schema 2020-12 node as an OpenAPI 3.0 schema node."""
    if not isinstance(node, dict):
        raise SchemaError(f"{where}: a schema must be an object, got {node!r}")
    out: dict[str, Any] = {}
    if "$ref" in node:
        ref = node["$ref"]
        out.update(to_openapi(resolve_ref(ref, defs, where), defs, f"{where}->{ref}"))
    conditions: list[Any] = []
    multi_type: list[str] = []
    for key, value in node.items():
        at = f"{where}/{key}"
        if key in DROPPED or key == "$ref":
            continue
        if key in SAME:
            if key == "type" and isinstance(value, list):
                kinds = [t for t in value if t != "null"]
                if "null" in value:
                    out["nullable"] = True
                if len(kinds) == 1:
                    out["type"] = kinds[0]
                else:
                    multi_type = kinds
            else:
                out[key] = value
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "examples":
            if value:
                out["example"] = value[0]
        elif key in SUB_ONE:
            out[key] = to_openapi(value, defs, at)
        elif key in SUB_LIST:
            subs = [to_openapi(v, defs, f"{at}/{i}") for i, v in enumerate(value)]
            if key == "allOf" and "allOf" in out:
                out["allOf"] = out["allOf"] + subs
            else:
                out[key] = subs
        elif key == "properties":
            out[key] = {name: to_openapi(v, defs, f"{at}/{name}") for name, v in value.items()}
        elif key == "additionalProperties":
            out[key] = value if isinstance(value, bool) else to_openapi(value, defs, at)
        elif key == "if":
            cond = to_openapi(value, defs, at)
            then = to_openapi(node["then"], defs, f"{where}/then") if "then" in node else None
            other = to_openapi(node["else"], defs, f"{where}/else") if "else" in node else None
            # if A then B else C  ==  (not A or B) and (A or C)
            if then is not None:
                conditions.append({"anyOf": [{"not": cond}, then]})
            if other is not None:
                conditions.append({"anyOf": [cond, other]})
        elif key in ("then", "else"):
            if "if" not in node:
                raise SchemaError(f"{at}: {key} without if")
        elif key == "dependentRequired":
            for name, needs in value.items():
                conditions.append({"anyOf": [{"not": {"required": [name]}}, {"required": [name, *needs]}]})
        else:
            raise SchemaError(f"{at}: keyword {key!r} has no OpenAPI 3.0 translation in scripts/higress_spec.py")
    if conditions:
        out["allOf"] = out.get("allOf", []) + conditions
    if multi_type:
        out = split_types(out, multi_type, where)
    return out


# Which keywords constrain which JSON type (the others apply to every type).
TYPE_KEYWORDS = {
    "string": {"minLength", "maxLength", "pattern", "format"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
    "object": {"properties", "additionalProperties", "required", "minProperties", "maxProperties"},
    "array": {"items", "minItems", "maxItems", "uniqueItems"},
    "boolean": set(),
}
TYPE_KEYWORDS["integer"] = TYPE_KEYWORDS["number"]


def split_types(out: dict[str, Any], kinds: list[str], where: str) -> dict[str, Any]:
    """``type: [A, B]`` (no OpenAPI 3.0 form) as ``anyOf: [{type: A, ...},
    {type: B, ...}]``, each branch with the keywords that constrain its
    type; the rest (description, default, enum, ...) stays outside."""
    branch_keys = set().union(*(TYPE_KEYWORDS[k] for k in kinds if k in TYPE_KEYWORDS))
    unknown = [k for k in kinds if k not in TYPE_KEYWORDS]
    if unknown:
        raise SchemaError(f"{where}/type: unknown JSON types {unknown}")
    branches = [{"type": k, **{key: out[key] for key in TYPE_KEYWORDS[k] if key in out}} for k in kinds]
    rest = {key: v for key, v in out.items() if key not in branch_keys}
    if "anyOf" in rest:
        rest["allOf"] = rest.get("allOf", []) + [{"anyOf": rest.pop("anyOf")}]
    rest["anyOf"] = branches
    return rest


def openapi_schema(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = schema if schema is not None else json.loads(SCHEMA.read_text())
    return to_openapi(schema, schema.get("$defs", {}))


def spec_document(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    phase, priority = phase_and_priority()
    return {
        "apiVersion": "1.0.0",
        "info": {
            "category": "auth",
            "name": "edge-auth/v1",
            "title": "Edge Auth",
            "x-title-i18n": {"en-US": "Edge Auth", "zh-CN": TITLE_ZH},
            "description": cargo_description(),
            "x-description-i18n": {"en-US": cargo_description(), "zh-CN": DESCRIPTION_ZH},
            "iconUrl": ICON_AUTH,
            "version": cargo_version(),
            "contact": {"name": "edge-auth"},
        },
        "spec": {
            "phase": phase,
            "priority": priority,
            "configSchema": {"openAPIV3Schema": openapi_schema(schema)},
        },
    }


# ---------------------------------------------------------------------------
# A small YAML writer: block style, every string double-quoted (JSON string
# syntax is valid YAML), so no value is ever misread (no "yes", "1.0", ":").
# ---------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")


def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    raise TypeError(f"not a YAML scalar: {v!r}")


def _key(k: str) -> str:
    return k if _PLAIN_KEY.match(k) and k not in ("true", "false", "null", "yes", "no", "on", "off", "y", "n") \
        else json.dumps(k, ensure_ascii=False)


def _emit(v: Any, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, dict) and x:
                lines.append(f"{pad}{_key(k)}:")
                _emit(x, indent + 1, lines)
            elif isinstance(x, list) and x:
                lines.append(f"{pad}{_key(k)}:")
                _emit(x, indent + 1, lines)
            else:
                lines.append(f"{pad}{_key(k)}: {_flow(x)}")
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, (dict, list)) and x:
                sub: list[str] = []
                _emit(x, indent + 1, sub)
                first = sub[0][len(pad) + 2:]
                lines.append(f"{pad}- {first}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {_flow(x)}")
    else:
        lines.append(pad + _scalar(v))


def _flow(v: Any) -> str:
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return _scalar(v)


def to_yaml(doc: Any) -> str:
    lines: list[str] = []
    _emit(doc, 0, lines)
    return "\n".join(lines) + "\n"


HEADER = (
    "# Generated by scripts/higress_spec.py from plugin-config-schema.json and\n"
    "# Cargo.toml; do not edit (make oci regenerates it).\n"
)


def spec_yaml(schema: dict[str, Any] | None = None) -> str:
    return HEADER + to_yaml(spec_document(schema))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    try:
        text = spec_yaml()
    except SchemaError as e:
        print(f"higress_spec: {e}", file=sys.stderr)
        return 1
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
