/* The sampling page's offline queue. Every saved group goes into localStorage first, with the
 * time its tube was scanned, as a batch with a key made here; the queue is sent in order to
 * /sampling/batches (the API's idempotent scan path). A batch leaves the queue only when the
 * server has answered it; a batch re-sent after a lost answer is replayed by the server, not
 * counted twice. Nothing is fetched from anywhere but this server. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("scan-config").textContent);
  var msg = cfg.messages;
  var QUEUE = "bastion.scan-queue." + cfg.user;
  var SENT = "bastion.scan-sent." + cfg.user;
  var token = document.querySelector('meta[name="csrf-token"]').content;
  var $ = function (id) { return document.getElementById(id); };
  var group = null;
  var sending = false;
  var offline = !navigator.onLine;
  var expired = false;

  function load(key) {
    try { return JSON.parse(localStorage.getItem(key) || "[]"); } catch (e) { return []; }
  }
  function store(key, value) { localStorage.setItem(key, JSON.stringify(value)); }
  function newKey() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    var hex = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    return ("web-" + cfg.site).slice(0, 40) + "-" + hex;
  }
  function text(el, value) { el.textContent = value; }
  function item(list, label) {
    var li = document.createElement("li");
    li.textContent = label;
    list.appendChild(li);
    return li;
  }
  function fail(message) { text($("scan-error"), message || ""); }

  function render() {
    var n = group ? group.people.length : 0;
    text($("count"), n + " / " + cfg.capacity);
    $("count").classList.toggle("full", n >= cfg.capacity);
    text($("current-tube"), group ? group.tube : "");
    var people = $("people");
    people.innerHTML = "";
    if (group) { group.people.forEach(function (p) { item(people, p); }); }
    var queue = load(QUEUE);
    text($("unsent-count"), String(queue.length));
    var q = $("queue");
    q.innerHTML = "";
    queue.forEach(function (b) {
      b.groups.forEach(function (g) {
        item(q, g.tube + " · " + msg.people.replace("{n}", g.people.length) + " · " + new Date(g.scanned_at).toLocaleTimeString());
      });
    });
    var s = $("sent");
    s.innerHTML = "";
    load(SENT).slice(0, 20).forEach(function (r) {
      var li = item(s, r.tube + " · " + msg.accepted + " " + r.accepted + (r.refused ? " · " + msg.refused + " " + r.refused : ""));
      (r.problems || []).forEach(function (p) {
        var small = document.createElement("div");
        small.className = "error";
        small.textContent = p;
        li.appendChild(small);
      });
    });
    var net = $("net");
    net.classList.toggle("offline", offline || expired);
    text(net, expired ? msg.expired : (offline ? msg.offline : msg.online));
    if (expired) {
      // The queue stays in this browser; logging in again (another tab is fine) lets it go.
      var link = document.createElement("a");
      link.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      link.target = "_blank";
      link.textContent = " → " + msg.login;
      net.appendChild(link);
    }
  }

  function onTube(value) {
    if (!value) { return; }
    group = { tube: value, people: [], scanned_at: new Date().toISOString() };
    fail("");
    render();
    $("person").focus();
  }
  function onPerson(value) {
    if (!value) { return; }
    if (!group) { fail(msg.tube_first); $("tube").focus(); return; }
    if (group.people.indexOf(value) >= 0) { fail(msg.twice); return; }
    if (group.people.length >= cfg.capacity) { fail(msg.full); return; }
    group.people.push(value);
    fail("");
    render();
  }
  function onSave() {
    if (!group || group.people.length === 0) { fail(msg.empty); return; }
    var queue = load(QUEUE);
    queue.push({
      key: newKey(),
      round: cfg.round,
      site: cfg.site,
      groups: [{ tube: group.tube, kind: "pooled", capacity: cfg.capacity, people: group.people, scanned_at: group.scanned_at }]
    });
    store(QUEUE, queue);
    group = null;
    fail("");
    render();
    $("tube").focus();
    flush();
  }

  function settle(batch, report) {
    var queue = load(QUEUE).filter(function (b) { return b.key !== batch.key; });
    store(QUEUE, queue);
    var sent = load(SENT);
    sent.unshift({ key: batch.key, tube: batch.groups[0].tube, accepted: report.accepted || 0,
                   refused: report.refused || 0, problems: report.problems || [] });
    store(SENT, sent.slice(0, 50));
  }

  function flush() {
    if (sending) { return; }
    var queue = load(QUEUE);
    if (queue.length === 0) { render(); return; }
    sending = true;
    var batch = queue[0];
    fetch("/sampling/batches", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify(batch)
    }).then(function (response) {
      offline = false;
      expired = response.status === 401;
      if (expired) { return "stop"; }
      if (response.status === 429 || response.status >= 500) { return "stop"; }
      return response.json().then(function (body) {
        if (response.ok) {
          settle(batch, { accepted: body.accepted, refused: body.refused,
                          problems: (body.problems || []).map(function (p) { return p.field + ": " + p.reason; }) });
        } else {
          var problems = (body.errors || []).map(function (p) { return p.field + ": " + p.reason; });
          settle(batch, { accepted: 0, refused: 1, problems: [body.title].concat(problems) });
        }
        return "next";
      });
    }, function () {
      offline = true;
      return "stop";
    }).then(function (outcome) {
      sending = false;
      render();
      if (outcome === "next") { flush(); }
    });
  }

  $("tube").addEventListener("keydown", function (e) {
    if (e.key === "Enter") { e.preventDefault(); onTube(this.value.trim()); this.value = ""; }
  });
  $("person").addEventListener("keydown", function (e) {
    if (e.key === "Enter") { e.preventDefault(); onPerson(this.value.trim()); this.value = ""; }
  });
  $("save").addEventListener("click", onSave);
  $("clear").addEventListener("click", function () { group = null; fail(""); render(); $("tube").focus(); });
  window.addEventListener("online", function () { offline = false; flush(); });
  window.addEventListener("offline", function () { offline = true; render(); });
  setInterval(flush, 5000);
  render();
  flush();
  $("scan").setAttribute("data-ready", "1");
}());
