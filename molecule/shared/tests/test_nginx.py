"""nginx + certbot: renewals reach the running nginx by a reload, never a restart,
and a broken configuration never takes the site down."""

import time

HOOK = "/etc/letsencrypt/renewal-hooks/deploy/50-reload-nginx"
BROKEN = "/etc/nginx/conf.d/zz-ogd-test-broken.conf"
RENEW = "certbot renew --force-renewal --no-random-sleep-on-renew"


def nginx_master_pid(site):
    return site.host.check_output("systemctl show --property MainPID --value nginx")


def wait_for_certificate_change(site, before, timeout=20.0):
    """Poll what the client is served until it differs from `before` (or time out)."""
    deadline = time.monotonic() + timeout
    served = site.served_certificate()
    while served == before and time.monotonic() < deadline:
        time.sleep(0.2)
        served = site.served_certificate()
    return served


def test_renewal_timer_is_the_only_scheduler(nginx_site):
    assert nginx_site.host.service("certbot.timer").is_enabled
    assert nginx_site.host.service("certbot.timer").is_running
    # The stored renewal configuration keeps the ACME directory it was issued from.
    conf = nginx_site.host.check_output("cat /etc/letsencrypt/renewal/%s.conf", nginx_site.domain)
    assert "server = https://pebble:14000/dir" in conf
    crontabs = nginx_site.host.run("grep -rls 'certbot' /etc/crontab /var/spool/cron 2>/dev/null")
    assert crontabs.stdout.strip() == ""


def test_forced_renewal_is_served_after_a_reload_not_a_restart(nginx_site, record_property):
    before = nginx_site.served_certificate()
    pid = nginx_master_pid(nginx_site)
    started = time.monotonic()
    renew = nginx_site.host.run(RENEW)
    renewal_seconds = time.monotonic() - started
    assert renew.rc == 0, renew.stderr
    after = wait_for_certificate_change(nginx_site, before)
    record_property("renewal_seconds", round(renewal_seconds, 2))
    print("forced renewal took %.2f s" % renewal_seconds)
    assert after[0] != before[0], "nginx still serves the old certificate"
    assert nginx_master_pid(nginx_site) == pid, "nginx was restarted, not reloaded"


def test_deploy_hook_facing_a_broken_config_leaves_nginx_serving(nginx_site):
    host = nginx_site.host
    before = nginx_site.served_certificate()
    pid = nginx_master_pid(nginx_site)
    host.check_output("echo 'this_is_not_a_directive on;' > %s", BROKEN)
    try:
        renew = host.run(RENEW)
        # certbot renewed; its deploy hook refused to reload a config nginx rejects.
        assert "NOT reloading nginx" in renew.stderr + renew.stdout
        assert nginx_master_pid(nginx_site) == pid
        still = nginx_site.curl("--output", "/dev/null", "--write-out", "%{http_code}",
                                nginx_site.base + "/api/v1/health")
        assert still.stdout == "200"
        assert nginx_site.served_certificate() == before, "a reload happened despite nginx -t failing"
    finally:
        host.run("rm -f %s", BROKEN)
    # Once fixed, the hook reloads and the renewed certificate is served.
    hook = host.run("RENEWED_LINEAGE=/etc/letsencrypt/live/%s %s", nginx_site.domain, HOOK)
    assert hook.rc == 0, hook.stderr
    assert wait_for_certificate_change(nginx_site, before)[0] != before[0]
    assert nginx_master_pid(nginx_site) == pid
