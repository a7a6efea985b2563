#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Merge a set of owned keys into a JSON file the application also writes."""

from __future__ import annotations

DOCUMENTATION = r"""
module: opengram_json_merge
short_description: Merge owned keys into a JSON config file, keeping every other key
description:
  - Reads the JSON object at I(path) (an absent file counts as C({})), merges
    I(settings) into it recursively (objects are merged, every other value,
    lists included, is replaced) and writes the file back only when the merge
    changes its content.
  - Keys the application wrote itself (for example Opengram's push keys) and
    the order of existing keys are kept, so a run that owns nothing new is a
    no-op.
  - The file is written atomically with 2-space indentation, like Opengram
    does. Supports check mode and diff.
options:
  path: {description: File to merge into., type: path, required: true}
  settings: {description: Keys the caller owns., type: dict, required: true}
  owner: {description: Owner of the file., type: str}
  group: {description: Group of the file., type: str}
  mode: {description: Mode of the file., type: raw}
author: opengram-deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Own server.port
  opengram_deploy.opengram.opengram_json_merge:
    path: /var/lib/opengram/opengram.config.json
    settings: {server: {port: 3000}}
    owner: opengram
    group: opengram
    mode: "0640"
"""

RETURN = r"""
config:
  description: The merged document.
  returned: always
  type: dict
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opengram_deploy.opengram.plugins.module_utils.common_atomic import replace_file


def merge(base, owned):
    """Return base with owned merged in; base is not modified."""
    if not isinstance(base, dict) or not isinstance(owned, dict):
        return owned
    result = dict(base)
    for key, value in owned.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def render(document):
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            settings=dict(type="dict", required=True),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="raw"),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    before_text = ""
    current = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            before_text = handle.read()
        if before_text.strip():
            try:
                current = json.loads(before_text)
            except ValueError as exc:
                module.fail_json(
                    msg="%s is not valid JSON (%s). Fix or remove the file; "
                    "Opengram will not start with it either." % (path, exc)
                )
        if not isinstance(current, dict):
            module.fail_json(msg="%s must hold a JSON object." % path)

    merged = merge(current, module.params["settings"])
    changed = merged != current or not before_text
    result = dict(changed=changed, config=merged, path=path)
    if module._diff:
        result["diff"] = dict(before=before_text, after=render(merged) if changed else before_text,
                              before_header=path, after_header=path)

    file_args = module.load_file_common_arguments(module.params)
    if changed and not module.check_mode:
        # roles/common's one atomic write: the temporary file gets its owner,
        # group and mode before it takes the name (without a mode, the one
        # of the file it replaces).
        def prepare(tmp):
            if file_args.get("mode") is None and os.path.exists(path):
                os.chmod(tmp, os.stat(path).st_mode & 0o7777)
            module.set_fs_attributes_if_different(dict(file_args, path=tmp), False)

        replace_file(path, render(merged).encode("utf-8"), ".opengram-config.", prepare)

    if not module.check_mode or os.path.exists(path):
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
