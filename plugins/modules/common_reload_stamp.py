#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The "reload owed" stamp of a service: check it, or record it after a reload."""

from __future__ import annotations

DOCUMENTATION = r"""
module: common_reload_stamp
short_description: The "reload owed" check of a service's configuration, and the stamp it compares
description:
  - A run killed after a service's configuration files changed but before its
    reload handler ran leaves the old configuration live, and the next run
    finds the files already in place (nothing changes, nothing is notified).
    So the reload handler records the checksum of what the service loaded
    (I(state=record)), and files that differ from it are owed a reload
    (I(state=check) reports a change, and the task notifies the handler).
  - The checksum is the sha256 of the files' concatenation, missing ones left
    out, kept as C(sha256sum) prints it (C(<hex>  -)); none of the files
    there, no checksum (an empty stamp, and nothing owed when there is no
    stamp either). Stamps written by the shell version of this check (before
    this module) stay valid.
  - I(state=check) only reads, and runs in check mode too. I(state=record) is
    skipped in check mode, like the reload it follows, and never reports a
    change (it follows a reload that did).
options:
  state:
    description:
      - C(check) reports changed when the files differ from the stamp (a reload is owed).
      - C(record) writes the files' checksum to the stamp; run it right after the reload.
    type: str
    choices: [check, record]
    required: true
  files:
    description: The configuration files the service loads, in a fixed order (their concatenation is summed).
    type: list
    elements: path
    required: true
  stamp:
    description: The stamp file (root-owned, mode 0644).
    type: path
    required: true
author: opengram-deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Reload nginx if it has not loaded the live site (left by an interrupted run)
  opengram_deploy.opengram.common_reload_stamp:
    state: check
    files: [/etc/nginx/sites-available/opengram]
    stamp: /var/lib/nginx/.opengram-deploy-loaded.sha256
  notify: Reload nginx

# In the handler, right after the reload:
- name: Record the site nginx has loaded
  opengram_deploy.opengram.common_reload_stamp:
    state: record
    files: [/etc/nginx/sites-available/opengram]
    stamp: /var/lib/nginx/.opengram-deploy-loaded.sha256
  listen: Reload nginx
"""

RETURN = r"""
checksum:
  description: The files' checksum as the stamp holds it (C(<hex>  -)), or an empty string when none of them exists.
  returned: always
  type: str
owed:
  description: Whether the files differ from the stamp (state=check).
  returned: when state is check
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opengram_deploy.opengram.plugins.module_utils.common_atomic import replace_file
from ansible_collections.opengram_deploy.opengram.plugins.module_utils.common_stamp import checksum, read_stamp


def write_stamp(stamp, line):
    replace_file(stamp, (line + "\n").encode("utf-8"), ".reload-stamp.", lambda tmp: os.chmod(tmp, 0o644))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", required=True, choices=["check", "record"]),
            files=dict(type="list", elements="path", required=True),
            stamp=dict(type="path", required=True),
        ),
        supports_check_mode=True,
    )
    files, stamp = module.params["files"], module.params["stamp"]
    line = checksum(files)
    if module.params["state"] == "check":
        owed = line != read_stamp(stamp)
        module.exit_json(changed=owed, owed=owed, checksum=line)
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, checksum=line,
                         msg="skipped in check mode, like the reload it records")
    try:
        write_stamp(stamp, line)
    except OSError as exc:
        module.fail_json(msg="cannot write the stamp %s: %s" % (stamp, exc), checksum=line)
    module.exit_json(changed=False, checksum=line)


if __name__ == "__main__":
    main()
