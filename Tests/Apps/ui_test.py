#!/usr/bin/env python3
"""The status page in a real browser (headless Chromium over the DevTools protocol), against a
real server: sign in, watch a service appear and turn running without a reload, open its log
tail, the gateway, source and event pages; screenshots of each into OUT. Run by
WebUIE2ETests with:

    SETPOINT_URL, SETPOINT_TOKEN, SETPOINT_PROJECT  the server and its admin token
    SETPOINT_BIN                                    the setpoint binary
    WORK                                            web.dstack.yml, gateway.dstack.yml, repo/ (a git repository)
    OUT                                             where screenshots go

Every check is on the rendered DOM (what the script drew from the watch stream), not on the
HTML the server sent. Prints one JSON line of findings at the end; exits 1 on a failed check.
"""
import json
import os
import subprocess
import sys
import time

from browser import Browser

URL, TOKEN, BIN, WORK, OUT = (os.environ[k] for k in ("SETPOINT_URL", "SETPOINT_TOKEN", "SETPOINT_BIN", "WORK", "OUT"))
SECRET_VALUE = "s3cr3t-value-for-the-ui-test"
findings = {}


def cli(*args, stdin=None, check=True):
    p = subprocess.run([BIN, *args], input=stdin, capture_output=True, text=True, timeout=240)
    if check and p.returncode != 0:
        raise AssertionError(f"setpoint {' '.join(args)} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def text(b, selector):
    return b.eval("(document.querySelector(%s) || {}).textContent || ''" % json.dumps(selector))


A11Y = """(() => {
          const out = [];
          if (!document.documentElement.lang) out.push('no lang');
          for (const el of document.querySelectorAll('input, select')) if (!el.labels || !el.labels.length) out.push('unlabelled ' + el.id);
          for (const el of document.querySelectorAll('button, a')) if (!(el.getAttribute('aria-label') || el.textContent.trim())) out.push('unnamed ' + el.outerHTML.slice(0, 60));
          const rgb = (s) => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
          const lum = (c) => { const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
          const background = (el) => { for (; el; el = el.parentElement) { const c = getComputedStyle(el).backgroundColor; if (c && !c.startsWith('rgba(0, 0, 0, 0)') && c !== 'transparent') return rgb(c); } return [255, 255, 255]; };
          for (const el of document.querySelectorAll('h1, h2, p, dt, dd, label, th, td, a, button, .badge, .muted, .live, caption, pre, code')) {
            if (!el.textContent.trim() || el.offsetParent === null) continue;
            const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
            const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
            if (ratio < 4.5) out.push('contrast ' + ratio.toFixed(2) + ' ' + el.textContent.trim().slice(0, 30));
          }
          return out;
        })()"""


def accessible(b, page):
    """Labels, names, language and WCAG AA contrast (4.5:1) of every visible text on the rendered page."""
    problems = b.eval(A11Y)
    check(problems == [], f"accessibility of {page}: {problems}")


def main():
    with Browser(OUT) as b:
        # Sign in (with the keyboard: the form submits on Enter), first with a wrong token.
        b.goto(URL + "/")
        b.wait("location.pathname === '/ui/' && !document.querySelector('#signin').hidden", what="the sign-in form at /ui/")
        check(b.eval("document.querySelector('label[for=token]').textContent") == "Token", "the token field has a label")
        check(b.eval("document.getElementById('session').offsetParent === null && document.getElementById('nav').offsetParent === null"),
              "signed out: no project, navigation or sign-out shown")
        b.screenshot("01-signin.png")
        accessible(b, "sign-in")
        b.type("#token", "not-a-token")
        b.key("Enter", "Enter", 13)
        b.wait("document.querySelector('#signin-error').textContent.includes('not valid')", what="the wrong token refused")
        b.type("#token", TOKEN)
        b.key("Enter", "Enter", 13)
        b.wait("document.querySelector('#view h1') && document.querySelector('#view h1').textContent === 'Services in main'", what="the services page")
        b.wait("document.querySelector('#live').textContent === 'live'", what="the watch connected")
        check(TOKEN not in b.eval("location.href"), "the token is not in the URL")
        check(TOKEN not in b.eval("document.cookie"), "the token is not in a cookie")
        check(b.eval("sessionStorage.getItem('setpoint.token')") == TOKEN, "the token is kept in the tab's session")
        check(b.eval("localStorage.length") == 0, "nothing is kept in localStorage")
        check("No services yet" in text(b, "#view"), "an empty project says so")

        # A service appears and turns running while the page stays as it is: no reload.
        b.eval("window.__sameDocument = 42; window.__statuses = [];"
               "new MutationObserver(() => { const c = document.querySelector('tr[data-run=web] [data-field=status]');"
               " if (c && window.__statuses[window.__statuses.length - 1] !== c.textContent) window.__statuses.push(c.textContent); })"
               ".observe(document.getElementById('view'), {subtree: true, childList: true, characterData: true});")
        cli("secret", "set", "API_KEY", stdin=SECRET_VALUE)
        apply = subprocess.Popen([BIN, "apply", "-f", os.path.join(WORK, "web.dstack.yml"), "-y"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        b.wait("document.querySelector('tr[data-run=web]')", timeout=60, what="the service's row")
        b.wait("document.querySelector('tr[data-run=web] [data-field=status]').textContent === 'running' && "
               "document.querySelector('tr[data-run=web] [data-field=ready]').textContent === '2/2'", timeout=120, what="web running 2/2")
        out, _ = apply.communicate(timeout=120)
        check(apply.returncode == 0, "apply: " + out)
        check(b.eval("window.__sameDocument") == 42, "the page was not reloaded")
        statuses = b.eval("window.__statuses")
        findings["statuses"] = statuses
        check(len(statuses) >= 2 and statuses[-1] == "running" and statuses[0] != "running",
              f"the row went through its phases live: {statuses}")
        check("/proxy/services/main/web/" in text(b, "tr[data-run=web] [data-field=url]"), "the row shows the service URL")
        b.screenshot("02-services.png")
        accessible(b, "services")

        # One service: URL and curl, conditions, replicas, events, configuration without the secret.
        b.click("tr[data-run=web] a")
        b.wait("document.querySelector('[data-service=web]')", what="the service page")
        b.wait("document.querySelectorAll('tr[data-replica] [data-field=phase]').length >= 2", what="its replicas")
        curl = text(b, "pre[data-snippet=curl]")
        check(curl.startswith("curl -sS " + URL + "/proxy/services/main/web/") and "$SETPOINT_TOKEN" in curl and TOKEN not in curl,
              "a curl snippet with the URL and no token: " + curl)
        check(b.eval("!!document.querySelector('tr[data-condition=Ready]')"), "the Ready condition is shown")
        configuration = text(b, "pre[data-field=configuration]")
        check("${{ secrets.API_KEY }}" in configuration, "the configuration shows the secret's reference: " + configuration[:300])
        check(SECRET_VALUE not in b.eval("document.documentElement.outerHTML"), "the secret's value is nowhere on the page")
        b.wait("document.querySelector('tr[data-event=Ready]')", what="replica Ready events")
        running = b.eval("[...document.querySelectorAll('tr[data-replica]')].filter(r => r.querySelector('[data-field=phase]').textContent === 'running').map(r => r.dataset.replica)")
        check(len(running) == 2, f"two running replicas: {running}")
        # The log tail, opened from the keyboard (focus the button, Enter).
        b.eval("document.querySelector('tr[data-replica=\"%s\"] button').focus()" % running[0])
        b.key("Enter", "Enter", 13)
        b.wait("document.querySelector('pre[data-log=\"%s\"]') && document.querySelector('pre[data-log=\"%s\"]').textContent.includes('GET /')"
               % (running[0], running[0]), timeout=30, what="log lines of " + running[0])
        lines_before = b.eval("document.querySelector('pre[data-log]').textContent.split('\\n').length")
        b.wait("document.querySelector('pre[data-log]').textContent.split('\\n').length > %d" % lines_before, timeout=30, what="the log growing live")
        check(b.eval("document.activeElement && document.activeElement.dataset.focus") == "logs:" + running[0], "focus stays on the log button across updates")
        b.screenshot("03-service.png")
        accessible(b, "service")

        # The gateway the test applied (a local one), live.
        cli("apply", "-f", os.path.join(WORK, "gateway.dstack.yml"), "-y")
        b.eval("location.hash = '#/gateways'")
        b.wait("document.querySelector('tr[data-gateway] [data-field=status]') && "
               "document.querySelector('tr[data-gateway] [data-field=status]').textContent === 'running'", timeout=60, what="the gateway running")
        check("example.test" in text(b, "tr[data-gateway] [data-field=domain]"), "the gateway's domain")
        b.screenshot("04-gateways.png")
        accessible(b, "gateways")

        # A source synced from a git repository: revision, sync and health per object.
        cli("source", "create", "site", "--git", "file://" + os.path.join(WORK, "repo"), "--interval", "5m")
        b.eval("location.hash = '#/sources'")
        b.wait("document.querySelector('tr[data-source=site] [data-field=status]') && "
               "document.querySelector('tr[data-source=site] [data-field=status]').textContent === 'ready'", timeout=120, what="the source ready")
        revision = text(b, "tr[data-source=site] [data-field=revision]")
        check(len(revision) == 12, "the applied revision: " + revision)
        b.click("tr[data-source=site] a")
        b.wait("document.querySelector('tr[data-object=\"Run/hello\"] [data-field=sync]') && "
               "document.querySelector('tr[data-object=\"Run/hello\"] [data-field=sync]').textContent === 'Synced' && "
               "document.querySelector('tr[data-object=\"Run/hello\"] [data-field=health]').textContent === 'Healthy'", timeout=120,
               what="hello Synced and Healthy")
        b.screenshot("05-source.png")
        accessible(b, "source")

        b.eval("location.hash = '#/events'")
        b.wait("document.querySelectorAll('tr[data-event]').length >= 5", what="the events page")
        reasons = b.eval("[...new Set([...document.querySelectorAll('tr[data-event]')].map(r => r.dataset.event))]")
        findings["reasons"] = reasons
        for wanted in ("ScaledUp", "Created", "Started", "Ready", "Published", "NewRevision", "Applied"):
            check(wanted in reasons, f"an event {wanted} from its controller: {reasons}")
        b.screenshot("06-events.png")
        accessible(b, "events")

        # Stopping shows live too.
        b.eval("location.hash = '#/services'")
        b.wait("document.querySelector('tr[data-run=web]')", what="the services page again")
        cli("stop", "web", "-y")
        b.wait("['terminating', 'terminated'].includes(document.querySelector('tr[data-run=web] [data-field=status]').textContent)",
               timeout=60, what="web stopping")
        check(b.eval("window.__sameDocument") == 42, "still the same document")

        findings["console"] = [c for c in b.console if "exception" in c]
        check(findings["console"] == [], f"no script errors: {findings['console']}")
    print(json.dumps({"ok": True, **findings}))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(json.dumps({"ok": False, "failed": str(e)}))
        sys.exit(1)
