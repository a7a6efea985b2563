"""The proxy configurations the bench adds to our hosts (bench only): our nginx
site with the upstream keepalive toggled, our Caddy site with the transport's
compression toggled, and the TLS-only ceilings of nginx and Caddy answering
the health path themselves."""

from __future__ import annotations

import re

from topology import (CADDY_VARIANT_PORT, CEILING_BODY, CEILING_PORT, KEEPALIVE_PORT, PROXY_HOSTS, BenchError,
                      BenchPath, caddy_variant_path, ceiling_paths, dexec, variant_path)


def _braced_end(conf: str, opening: int) -> int:
    """Index just past the `}` that closes the `{` at ``opening``."""
    depth = 0
    for i in range(opening, len(conf)):
        depth += {"{": 1, "}": -1}.get(conf[i], 0)
        if depth == 0:
            return i + 1
    raise BenchError("unbalanced braces in our rendered nginx site")


def server_blocks(conf: str) -> list[str]:
    """The top-level `server { ... }` blocks of an nginx file (braces matched)."""
    return [conf[m.start():_braced_end(conf, m.end() - 1)] for m in re.finditer(r"(?m)^server\s*\{", conf)]


def site_has_upstream_keepalive(site: str) -> bool:
    return re.search(r"upstream\s+\S+\s*\{[^}]*\bkeepalive\s+\d+", site) is not None


def _tls_block_on(site: str, port: int) -> str:
    tls = [b for b in server_blocks(site) if re.search(r"listen\s+443\s", b)]
    if len(tls) != 1:
        raise BenchError("cannot find the TLS server block in our rendered nginx site")
    block = re.sub(r"\n\s*listen\s+\[::\]:443[^;]*;", "", tls[0])
    return re.sub(r"listen\s+443\s+ssl[^;]*;", f"listen {port} ssl;", block)


def nginx_variant(site: str, port: int = KEEPALIVE_PORT) -> tuple[str, str, str]:
    """Our rendered nginx site's TLS server block on another port with the upstream
    keepalive toggled: (path name, label, config). Bench only: it shows what upstream
    keepalive is worth, whichever way the role's template has it."""
    block = _tls_block_on(site, port)
    header = "# BENCH ONLY (bench/run.py): our site's TLS server on another port, "
    if site_has_upstream_keepalive(site):
        upstream = re.search(r"upstream\s+\S+\s*\{[^}]*?\bserver\s+([\d.]+:\d+)", site).group(1)
        # Every location of the TLS server (the access gate gives the API, the
        # event stream and the web app locations of their own).
        block, n = re.subn(r"proxy_pass\s+http://[A-Za-z_][\w-]*;", f"proxy_pass http://{upstream};",
                           block)
        if n == 0:
            raise BenchError("our rendered nginx site does not have the expected proxy_pass")
        return ("ours-nginx-no-keepalive", "our nginx without upstream keepalive (as at 93b00d9)",
                header + "without the upstream keepalive.\n" + block + "\n")
    m = re.search(r"proxy_pass\s+http://127\.0\.0\.1:(\d+);", block)
    if not m or 'proxy_set_header Connection "";' not in block:
        raise BenchError("our rendered nginx site does not have the expected proxy_pass")
    block = block.replace(m.group(0), "proxy_pass http://ogdbench_keepalive;")
    return ("ours-nginx+keepalive", "our nginx + upstream keepalive (proposed)",
            header + "with the proposed upstream keepalive.\n"
            "upstream ogdbench_keepalive {\n"
            f"    server 127.0.0.1:{m.group(1)};\n"
            "    keepalive 16;\n"
            "}\n\n" + block + "\n")


def nginx_ceiling(site: str, port: int = CEILING_PORT) -> str:
    """Our rendered nginx site's TLS server block on another port, answering the
    health path itself: what TLS termination alone costs (bench only). The site's
    own health location (the access gate gives it one) becomes the answer; without
    one, the answer goes before `location /`."""
    block = _tls_block_on(site, port)
    answer = ("location = /api/v1/health {\n        default_type application/json;\n"
              f"        return 200 '{CEILING_BODY}';\n    }}")
    own = re.search(r"location\s*=\s*/api/v1/health\s*\{", block)
    if own:
        block = block[:own.start()] + answer + block[_braced_end(block, own.end() - 1):]
    else:
        block, n = re.subn(r"    location / \{", lambda _: "    " + answer + "\n\n    location / {", block, count=1)
        if n != 1:
            raise BenchError("our rendered nginx site has no `location /` in its TLS server")
    return "# BENCH ONLY (bench/run.py): TLS-only ceiling, our TLS server answering itself.\n" + block + "\n"


def caddy_ceiling(domain: str, cert: str, key: str, port: int = CEILING_PORT) -> str:
    """A second Caddy (no admin API, no redirects) with the certificate our Caddy
    obtained, answering the health path itself (bench only)."""
    return ("# BENCH ONLY (bench/run.py): TLS-only ceiling.\n"
            "{\n\tadmin off\n\tauto_https disable_redirects\n}\n\n"
            f"https://{domain}:{port} {{\n\ttls {cert} {key}\n"
            f"\theader Content-Type application/json\n\trespond /api/v1/health `{CEILING_BODY}` 200\n}}\n")


_COMPRESSION_OFF = re.compile(r"^\t\ttransport http \{\n\t\t\tcompression off\n\t\t\}\n", re.M)


def caddy_variant(site: str, domain: str, cert: str, key: str,
                  port: int = CADDY_VARIANT_PORT) -> tuple[str, str, str]:
    """Our rendered Caddy site on another port, for a second Caddy (no admin API,
    no redirects, the certificate our Caddy obtained), with `transport http
    { compression off }` toggled whichever way the role has it: (path name, label,
    Caddyfile). Bench only."""
    block, n = re.subn(r"^" + re.escape(domain) + r" \{\n", f"https://{domain}:{port} {{\n", site, count=1,
                       flags=re.M)
    if n != 1:
        raise BenchError(f"our rendered Caddy site does not start with `{domain} {{`")
    block, n = re.subn(r"^\ttls [^\n]*\{\n.*?^\t\}\n", lambda _: f"\ttls {cert} {key}\n", block, count=1,
                       flags=re.M | re.S)
    if n != 1:
        raise BenchError("our rendered Caddy site has no `tls ... { }` block")
    if _COMPRESSION_OFF.search(block):
        name, label = "ours-caddy-compressing", "our Caddy without `compression off` (as before)"
        block = _COMPRESSION_OFF.sub("", block)
    else:
        upstream = re.search(r"^\treverse_proxy [^\n]*\{\n", block, flags=re.M)
        if not upstream:
            raise BenchError("our rendered Caddy site has no `reverse_proxy ... {`")
        name, label = "ours-caddy+compression-off", "our Caddy + transport compression off (proposed)"
        block = (block[:upstream.end()] + "\t\ttransport http {\n\t\t\tcompression off\n\t\t}\n"
                 + block[upstream.end():])
    return (name, label, "# BENCH ONLY (bench/run.py): our Caddy site with the transport's compression "
            "toggled.\n{\n\tadmin off\n\tauto_https disable_redirects\n}\n\n" + block)


def caddy_cert(host) -> tuple[str, str]:
    """The certificate and key files our Caddy obtained for its domain."""
    found = dexec(host.name, "sh", "-c", "find /var/lib/caddy -name '%s.crt' -o -name '%s.key' | sort"
                  % (host.domain, host.domain)).stdout.split()
    if len(found) != 2:
        raise BenchError(f"our Caddy's certificate for {host.domain} not found in /var/lib/caddy: {found}")
    return found[0], found[1]  # sorted: .crt before .key


def wait_for(host, path: BenchPath, port: int) -> None:
    wait = (f"for i in $(seq 100); do curl -sf --resolve {host.domain}:{port}:127.0.0.1 -k "
            f"{path.url}/api/v1/health >/dev/null && exit 0; sleep 0.1; done; exit 1")
    if dexec(host.name, "sh", "-c", wait, check=False).returncode:
        raise BenchError(f"the bench path {path.name} ({path.url}) does not answer")


def install_caddy_variant() -> BenchPath:
    """caddy_variant() on our Caddy host, in a Caddy of its own (a transient unit)."""
    caddy = PROXY_HOSTS[0]
    site = dexec(caddy.name, "cat", "/etc/caddy/opengram-deploy/site.caddy").stdout
    name, label, conf = caddy_variant(site, caddy.domain, *caddy_cert(caddy))
    dexec(caddy.name, "sh", "-c", "mkdir -p /opt/ogdbench && cat > /opt/ogdbench/variant.Caddyfile", input=conf)
    dexec(caddy.name, "caddy", "validate", "--adapter", "caddyfile", "--config", "/opt/ogdbench/variant.Caddyfile")
    dexec(caddy.name, "systemd-run", "--unit", "ogdbench-variant", "--collect", "caddy", "run",
          "--adapter", "caddyfile", "--config", "/opt/ogdbench/variant.Caddyfile")
    path = caddy_variant_path(name, label)
    wait_for(caddy, path, CADDY_VARIANT_PORT)
    return path


def install_nginx_variant() -> BenchPath:
    """Our nginx site with the upstream keepalive toggled, on our nginx host's port 8443."""
    nginx = PROXY_HOSTS[1].name
    site = dexec(nginx, "cat", "/etc/nginx/sites-available/opengram").stdout
    name, label, conf = nginx_variant(site)
    # Named to sort after our site: nginx reads sites-enabled/ in name order, and
    # the server block uses the log format and zones our site file defines.
    dexec(nginx, "sh", "-c", "cat > /etc/nginx/sites-enabled/zz-ogdbench-variant", input=conf)
    dexec(nginx, "nginx", "-t")
    dexec(nginx, "systemctl", "reload", "nginx")
    return variant_path(name, label)


def install_ceilings() -> list[BenchPath]:
    """The TLS-only ceilings on our Caddy and our nginx hosts (CEILING_PORT)."""
    caddy, nginx = PROXY_HOSTS[0], PROXY_HOSTS[1]
    site = dexec(nginx.name, "cat", "/etc/nginx/sites-available/opengram").stdout
    dexec(nginx.name, "sh", "-c", "cat > /etc/nginx/sites-enabled/zz-ogdbench-ceiling", input=nginx_ceiling(site))
    dexec(nginx.name, "nginx", "-t")
    dexec(nginx.name, "systemctl", "reload", "nginx")
    found = dexec(caddy.name, "sh", "-c", "find /var/lib/caddy -name '%s.crt' -o -name '%s.key' | sort"
                  % (caddy.domain, caddy.domain)).stdout.split()
    if len(found) != 2:
        raise BenchError(f"our Caddy's certificate for {caddy.domain} not found in /var/lib/caddy: {found}")
    cert, key = found  # sorted: .crt before .key
    dexec(caddy.name, "sh", "-c", "mkdir -p /opt/ogdbench && cat > /opt/ogdbench/ceiling.Caddyfile",
          input=caddy_ceiling(caddy.domain, cert, key))
    dexec(caddy.name, "caddy", "validate", "--adapter", "caddyfile", "--config", "/opt/ogdbench/ceiling.Caddyfile")
    dexec(caddy.name, "systemd-run", "--unit", "ogdbench-ceiling", "--collect", "caddy", "run",
          "--adapter", "caddyfile", "--config", "/opt/ogdbench/ceiling.Caddyfile")
    paths = ceiling_paths()
    for path in paths:
        host = caddy if path.host == caddy.name else nginx
        wait = (f"for i in $(seq 100); do curl -sf --resolve {host.domain}:{CEILING_PORT}:127.0.0.1 -k "
                f"{path.url}/api/v1/health >/dev/null && exit 0; sleep 0.1; done; exit 1")
        if dexec(host.name, "sh", "-c", wait, check=False).returncode:
            raise BenchError(f"the ceiling {path.name} ({path.url}) does not answer")
    return paths
