"""The dashboard's one stylesheet and one small script, served by the app itself (the
Content-Security-Policy allows no inline code and no third-party host). The pages work without
the script: it only refreshes the live figures and fills the clipboard."""

from __future__ import annotations

import hashlib

__all__ = ["CSS", "JS", "VERSION"]

CSS = """
:root{--ink:#1d2430;--muted:#5d6776;--line:#e3e7ee;--bg:#f6f7f9;--card:#fff;--red:#c62828;
--red-bg:#fdecec;--amber:#8a5a00;--amber-bg:#fff4d6;--blue:#1f5fbf;--green:#1e7d45;
--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
*{box-sizing:border-box}
html{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--ink);background:var(--bg)}
body{margin:0}
a{color:var(--blue);text-decoration:none}a:hover{text-decoration:underline}
header.top{background:#111827;color:#e5e7eb;padding:.6rem 1.5rem;display:flex;gap:1.5rem;
align-items:center;flex-wrap:wrap}
header.top .brand{font-weight:700;letter-spacing:.02em;color:#fff;font-size:1.05rem}
header.top nav a{color:#cbd5e1;margin-right:1rem}header.top nav a.on{color:#fff;font-weight:600}
header.top .src{margin-left:auto;font-size:.85rem;color:#9ca3af}
header.top .src b{color:#e5e7eb;font-weight:500}
main{max-width:1180px;margin:0 auto;padding:1.25rem 1.5rem 3rem}
h1{font-size:1.45rem;margin:.2rem 0 .25rem}h2{font-size:1.05rem;margin:0 0 .6rem}
.key{font-family:var(--mono);font-size:.95em}
h1.key{font-size:1.45rem}
.muted{color:var(--muted)}.small{font-size:.85rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:1rem 1.2rem;
margin:0 0 1rem}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem;align-items:start}
@media (max-width:860px){.grid{grid-template-columns:1fr}}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.5rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.78rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr:last-child td{border-bottom:0}
.list td{padding:.65rem .6rem}
.badge{display:inline-block;font-size:.72rem;font-weight:600;padding:.1rem .45rem;
border-radius:999px;border:1px solid var(--line);color:var(--muted);margin-right:.25rem;
text-transform:uppercase;letter-spacing:.04em}
.badge.killed{background:var(--red);border-color:var(--red);color:#fff}
.badge.rollout{color:var(--blue);border-color:#c9d8f2}
.badge.stale{color:var(--amber);background:var(--amber-bg);border-color:#f1dfa8}
.chip{display:inline-flex;align-items:center;gap:.3rem;font-family:var(--mono);font-size:.8rem;
padding:.05rem .4rem;border:1px solid var(--line);border-radius:6px;margin:0 .25rem .2rem 0;
background:#fafbfc}
.swatch{display:inline-block;width:.85rem;height:.85rem;border-radius:3px;
border:1px solid rgba(0,0,0,.25);vertical-align:-2px;overflow:hidden}
h2.sub{margin-top:.9rem}
tr.regressing td{background:var(--red-bg)}tr.regressing td.num.err{color:var(--red);
font-weight:700}
.live-mini{font-size:.8rem;color:var(--muted);font-variant-numeric:tabular-nums}
.live-mini .regressing{color:var(--red);font-weight:700}
form.search{display:flex;gap:.5rem;align-items:center;flex-wrap:wrap;margin:0 0 1rem}
input[type=search],input[type=text]{font:inherit;padding:.45rem .6rem;border:1px solid #cfd5de;
border-radius:7px;min-width:16rem;background:#fff}
.tabs a{display:inline-block;padding:.35rem .7rem;border-radius:7px;color:var(--muted);
font-size:.9rem}
.tabs a.on{background:#e8eef9;color:var(--blue);font-weight:600}
button,.button{font:inherit;font-size:.9rem;padding:.42rem .85rem;border-radius:7px;
border:1px solid #cfd5de;background:#fff;color:var(--ink);cursor:pointer;display:inline-block}
button:hover{border-color:#9aa5b5}
button.danger{background:var(--red);border-color:var(--red);color:#fff;font-weight:600}
button.primary{background:var(--blue);border-color:var(--blue);color:#fff;font-weight:600}
.state-killed{border-left:4px solid var(--red)}
.notice{padding:.6rem .9rem;border-radius:8px;margin:0 0 1rem;background:#e9f6ee;
border:1px solid #bfe3cc;color:#14532d}
.notice.error{background:var(--red-bg);border-color:#f3c1c1;color:#7f1d1d}
pre.edit{background:#0f172a;color:#e2e8f0;padding:.75rem .9rem;border-radius:8px;
font-family:var(--mono);font-size:.85rem;overflow:auto;margin:.4rem 0}
ol.rules{margin:0;padding-left:1.3rem}ol.rules li{margin:.25rem 0}
.diff{font-family:var(--mono);font-size:.82rem;margin:.2rem 0 0;padding:0;list-style:none}
.diff li.kill{color:var(--red)}.diff li.add{color:var(--green)}.diff li.unkill{color:var(--blue)}
.inline{display:inline}
.row{display:flex;gap:.5rem;align-items:center;flex-wrap:wrap}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
.kv dt{color:var(--muted)}.kv dd{margin:0}
.verdict-halt,.behind{color:var(--red);font-weight:700}
footer{color:var(--muted);font-size:.8rem;text-align:center;padding:1rem}
"""

JS = """
(function () {
  "use strict";
  var body = document.body;
  document.querySelectorAll("[data-copy]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      var text = document.getElementById(b.getAttribute("data-copy")).textContent;
      navigator.clipboard.writeText(text).then(function () {
        b.textContent = "Copied";
        setTimeout(function () { b.textContent = "Copy"; }, 1500);
      });
    });
  });
  var url = body.getAttribute("data-live");
  if (!url) { return; }
  var stamp = document.querySelector("[data-live-at]");
  function update(data) {
    document.querySelectorAll("[data-cell]").forEach(function (el) {
      var p = el.getAttribute("data-cell").split("|");
      var f = data.flags[p[0]], v = f && f[p[1]];
      if (v) { el.textContent = v.text[p[2]]; }
    });
    document.querySelectorAll("[data-row]").forEach(function (el) {
      var p = el.getAttribute("data-row").split("|");
      var f = data.flags[p[0]], v = f && f[p[1]];
      el.classList.toggle("regressing", !!(v && v.regressing));
    });
    if (stamp) { stamp.textContent = new Date(data.at * 1000).toLocaleTimeString(); }
  }
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d) { update(d); } })
      .catch(function () {});
  }
  setInterval(refresh, 3000);
})();
"""

#: cache-busting tag of the assets (their URLs carry it, so they can be cached long)
VERSION = hashlib.sha256((CSS + JS).encode()).hexdigest()[:10]
