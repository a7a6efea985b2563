#!/usr/bin/python
# -*- coding: utf-8 -*-
"""A file with the given content, owner, group and mode: one module run.

The roles' files are rendered on the controller (the template lookup) and
written by this module. ansible.builtin.template and copy cost five
round trips to the host for a file that is already right (a temporary
directory, its removal, a stat, the file module for the attributes, the
home directory); this costs one, which is most of a no-change run.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: common_file
short_description: Write a file from content (or from a file on the host) in one module run
description:
  - Compares the wanted bytes with the file on the host, writes them atomically when they
    differ, then sets owner, group and mode. Check mode and diff mode as
    M(ansible.builtin.copy) shows them.
options:
  dest:
    description: Absolute path of the file on the host; its directory must exist.
    type: path
    required: true
  content:
    description: 'The wanted content. A task whose content holds a secret sets C(no_log: true).'
    type: str
  remote_src:
    description: Take the wanted content from this file on the host instead of O(content).
    type: path
  validate:
    description:
      - A command run on the new content before it takes the file's place, C(%s) standing for a
        temporary file; the file is left as it was when the command fails.
    type: str
  known:
    description:
      - "The C(files) of a M(opengram_deploy.opengram.common_look) taken earlier in the run, C({path:
        {sha256, owner, group, mode}}). When the entry this task would leave is the one seen, the action
        plugin (the controller half) reports ok without running the module on the host. The module
        itself ignores it."
    type: dict
extends_documentation_fragment: [files]
author: opengram-deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Template opengram.env
  opengram_deploy.opengram.common_file:
    dest: /etc/opengram/opengram.env
    content: "{{ lookup('ansible.builtin.template', 'etc/opengram/opengram.env.j2') }}"
    owner: root
    group: opengram
    mode: "0640"
"""

RETURN = r"""
dest:
  description: The file written.
  type: str
  returned: always
differs:
  description:
    - Whether the file was not as asked (content, owner, group or mode), like C(changed) but kept when the
      task overrides C(changed_when); run with C(check_mode=true), it compares the live file with the wanted one.
  type: bool
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible_collections.opengram_deploy.opengram.plugins.module_utils.common_atomic import replace_file

# Above this size (or for bytes that are not text) the diff names the change only.
DIFF_MAX_BYTES = 104448


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _text_for_diff(data):
    if data is None:
        return ""
    if len(data) > DIFF_MAX_BYTES or b"\x00" in data:
        return "(binary or large file, %d bytes)\n" % len(data)
    return to_native(data, errors="surrogate_or_strict")


def _wanted(module):
    return to_bytes(module.params["content"], errors="surrogate_or_strict")


def main():
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "path", "required": True},
            "content": {"type": "str"},
            "remote_src": {"type": "path"},
            "validate": {"type": "str"},
            "known": {"type": "dict", "no_log": False},
        },
        mutually_exclusive=[("content", "remote_src")],
        required_one_of=[("content", "remote_src")],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    dest, validate = module.params["dest"], module.params["validate"]
    if validate and "%s" not in validate:
        module.fail_json(msg="validate must contain %%s (the file to check): %s" % validate, dest=dest)
    if os.path.isdir(dest):
        module.fail_json(msg="%s is a directory, not a file" % dest, dest=dest)
    directory = os.path.dirname(dest) or "."
    if not os.path.isdir(directory):
        if module.check_mode:
            # Check mode on a fresh host: the task that creates the directory
            # only said it would.
            module.exit_json(changed=True, differs=True, dest=dest,
                             diff=[{"before_header": "%s (absent)" % dest, "after_header": dest,
                                    "before": "", "after": _text_for_diff(_wanted(module))}]
                             if module._diff and module.params["remote_src"] is None else [])
        module.fail_json(msg="the directory of %s does not exist" % dest, dest=dest)

    if module.params["remote_src"] is not None:
        wanted = _read(module.params["remote_src"])
        if wanted is None:
            module.fail_json(msg="remote_src %s does not exist" % module.params["remote_src"], dest=dest)
    else:
        wanted = _wanted(module)

    current = _read(dest)
    changed = current != wanted
    diffs = []
    if changed and module._diff:
        diffs.append({"before_header": dest if current is not None else "%s (absent)" % dest,
                      "after_header": dest,
                      "before": _text_for_diff(current), "after": _text_for_diff(wanted)})

    attributes_changed = False
    attr_diff = {"before": {}, "after": {}}
    if changed and not module.check_mode:
        def prepare(tmp):
            # Owner, group and mode are set on the temporary file before it
            # takes the name: a secret is never readable by others, not even briefly.
            tmp_args = module.load_file_common_arguments(module.params, path=tmp)
            if tmp_args.get("mode") is None:
                umask = os.umask(0)
                os.umask(umask)
                tmp_args["mode"] = (os.stat(dest).st_mode & 0o7777) if current is not None else 0o666 & ~umask
            module.set_fs_attributes_if_different(tmp_args, False)
            if validate:
                rc, out, err = module.run_command(validate % tmp)
                if rc != 0:
                    module.fail_json(msg="failed to validate", exit_status=rc, stdout=out, stderr=err, dest=dest)

        replace_file(dest, wanted, ".common_file.", prepare)
    elif not (module.check_mode and current is None):
        # A file not written in check mode gets its attributes when it is created.
        file_args = module.load_file_common_arguments(module.params, path=dest)
        attributes_changed = module.set_fs_attributes_if_different(
            file_args, False, attr_diff if module._diff else None)
    if attributes_changed and module._diff and (attr_diff["before"] or attr_diff["after"]):
        diffs.append(attr_diff)
    module.exit_json(changed=changed or attributes_changed, differs=changed or attributes_changed, dest=dest,
                     diff=diffs)


if __name__ == "__main__":
    main()
