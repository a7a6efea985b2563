"""What a user of the deployed site sees, checked from a client container."""

import json

import pytest


def test_https_serves_a_certificate_issued_by_the_acme_ca(site):
    ok = site.curl("--output", "/dev/null", "--write-out", "%{http_code} %{ssl_verify_result}",
                   site.base + "/api/v1/health")
    assert ok.rc == 0, ok.stderr
    assert ok.stdout == "200 0"
    # The same request with only the system trust store must fail: the chain
    # leads to Pebble's root, not to anything else the client happens to trust.
    untrusted = site.client.run("curl --silent --max-time 10 --output /dev/null %s/api/v1/health", site.base)
    assert untrusted.rc == 60, "certificate unexpectedly trusted without Pebble's root"


def test_certificate_names_the_domain(site):
    result = site.client.run(
        "echo | openssl s_client -connect %s:443 -servername %s -CAfile %s -verify_return_error 2>/dev/null"
        " | openssl x509 -noout -ext subjectAltName", site.domain, site.domain, "/opt/ogd-probes/pebble-root.pem")
    assert result.rc == 0, result.stderr
    assert "DNS:" + site.domain in result.stdout


def test_plain_http_redirects_to_https(site):
    result = site.client.run(
        "curl --silent --output /dev/null --max-time 10 --write-out '%%{http_code} %%{redirect_url}' "
        "http://%s/chats?x=1", site.domain)
    assert result.rc == 0, result.stderr
    status, location = result.stdout.split(" ", 1)
    assert status in ("301", "308")
    assert location == "https://%s/chats?x=1" % site.domain


def test_health_through_the_proxy(site):
    result = site.curl(site.base + "/api/v1/health")
    assert result.rc == 0, result.stderr
    health = json.loads(result.stdout)
    assert health["status"] == "ok"
    assert health["service"] == "opengram"
    assert health["version"] == site.version


def test_hsts_header(site):
    result = site.curl("--head", site.base + "/api/v1/health")
    assert "strict-transport-security: max-age=" in result.stdout.lower()


def _assert_one_by_one(report, count):
    assert report["status"] == 200
    assert report["headers"]["content-type"].startswith("text/event-stream")
    events = report["events"]
    assert [e["post_status"] for e in events] == [201] * count, events
    missing = [e for e in events if e["arrived"] is None]
    assert not missing, "events never arrived: %s" % missing
    for event in events:
        # Each event reaches the client within 0.5 s of the request that created it...
        assert event["delay"] < 0.5, events
    # ...so they arrive spread out like they were created, not as one batch.
    gaps = [b["arrived"] - a["arrived"] for a, b in zip(events, events[1:])]
    assert all(gap > 0.5 for gap in gaps), gaps


def test_sse_events_arrive_one_by_one(site):
    # The secret as API clients send it: Authorization: Bearer.
    _assert_one_by_one(site.probe("sse", "--events", "3", "--interval", "1.0"), 3)


def test_browser_event_stream_with_the_secret_in_the_query(site):
    """The one check of ?token=: a browser's EventSource cannot set headers, so the
    web app opens /api/v1/events/stream?token=<secret>; that path must work too."""
    if not site.token:
        pytest.skip("no instance secret in this scenario: the stream needs no token")
    _assert_one_by_one(site.probe("sse", "--query-token", "--events", "2", "--interval", "1.0"), 2)


def _upload(site, size):
    path = "/opt/ogd-probes/upload-%d.bin" % size
    made = site.client.run("test -s %s || head -c %s /dev/urandom > %s", path, str(size), path)
    assert made.rc == 0, made.stderr
    chat = site.create_chat("upload-%d" % size)
    status, body = site.upload(path, chat["id"])
    return chat, status, body


def test_upload_of_exactly_the_limit_succeeds(site):
    chat, status, body = _upload(site, site.upload_max)
    assert status == 201, body[:500]
    media = json.loads(body)
    assert (media["chat_id"], media["byte_size"]) == (chat["id"], site.upload_max), media
    # The app has it, all of it: its metadata, and the bytes served back.
    status, body = site.api("GET", "/api/v1/media/" + media["id"])
    assert status == 200 and json.loads(body)["byte_size"] == site.upload_max, body[:500]
    served = site.curl("--output", "/dev/null", "--write-out", "%{http_code} %{size_download}", *site.auth_header(),
                       site.base + "/api/v1/files/" + media["id"])
    assert served.stdout == "200 %d" % site.upload_max, served.stdout + served.stderr


def test_upload_over_the_limit_is_refused(site):
    _, status, body = _upload(site, site.upload_max * 2)
    assert status == 413, body[:500]


def test_rate_limit_counts_each_real_client_even_with_forged_headers(site):
    # The second client sends one more write than the limit, each claiming
    # another X-Forwarded-For / X-Real-IP: the proxy must not let it pick its
    # identity, so it is limited anyway.
    flood = site.probe("writes", "--count", str(site.rate_max + 1), "--forge", client=site.other_client)
    statuses = flood["statuses"]
    assert set(statuses) <= {201, 429}, statuses
    assert 429 in statuses, "never rate-limited: forged X-Forwarded-For chose the bucket"
    # The first client is another IP: its bucket is its own.
    own = site.probe("writes", "--count", "1")
    assert own["statuses"] == [201]


def test_opengram_port_is_closed_to_other_hosts(site):
    # Opengram binds every interface; only the host itself may reach its port
    # (anyone else could bypass the proxy and pick their rate-limit identity).
    outside = site.client.run(
        "curl --silent --max-time 5 --output /dev/null http://%s:%s/api/v1/health", site.domain, str(site.port))
    assert outside.rc in (7, 28), "port %s answered from the client (curl exit %s)" % (site.port, outside.rc)
    inside = site.host.run("curl --silent --fail --max-time 5 http://127.0.0.1:%s/api/v1/health", str(site.port))
    assert inside.rc == 0 and '"status":"ok"' in inside.stdout
