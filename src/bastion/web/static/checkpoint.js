// Checkpoint: verify a health code offline in the browser (Ed25519 via WebCrypto).
// Format (see docs/healthcode-codes.md): "BHC1." + base64url(version | kid(4) | colour |
// issued(u32) | expires(u32) | len | person token | signature(64)).
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("checkpoint-data").textContent);
  const T = data.texts;
  const COLOURS = ["green", "yellow", "red"];
  const PREFIX = "BHC1.";
  const HEAD = 15; // 1 + 4 + 1 + 4 + 4 + 1
  const STORE = "bastion.checkpoint.jwks";
  const SKEW = 60;
  let jwks = data.jwks;
  let online = false;

  const form = document.getElementById("checkpoint-form");
  const input = document.getElementById("payload");
  const box = document.getElementById("verdict");
  const title = document.getElementById("verdict-title");
  const details = document.getElementById("verdict-details");
  const keysState = document.getElementById("keys-state");

  function b64url(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    const raw = atob(padded);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function mask(token) {
    return token.length <= 8 ? token.slice(0, 2) + "…" : token.slice(0, 4) + "…" + token.slice(-4);
  }

  function decode(payload) {
    const text = payload.trim();
    if (!text.startsWith(PREFIX)) return null;
    let raw;
    try {
      raw = b64url(text.slice(PREFIX.length));
    } catch (e) {
      return null;
    }
    if (raw.length < HEAD + 64) return null;
    const view = new DataView(raw.buffer);
    const version = raw[0];
    const colour = raw[5];
    const issued = view.getUint32(6);
    const expires = view.getUint32(10);
    const size = raw[14];
    if (version !== 1 || colour >= COLOURS.length || raw.length !== HEAD + size + 64) return null;
    let person;
    try {
      person = new TextDecoder("utf-8", { fatal: true }).decode(raw.slice(HEAD, HEAD + size));
    } catch (e) {
      return null;
    }
    if (!person || issued > expires) return null;
    return {
      kid: hex(raw.slice(1, 5)),
      colour: COLOURS[colour],
      issued,
      expires,
      person,
      body: raw.slice(0, HEAD + size),
      signature: raw.slice(HEAD + size),
    };
  }

  async function verify(payload) {
    const claims = decode(payload);
    if (!claims) return { refusal: "malformed" };
    const key = (jwks.keys || []).find((k) => k.kid === claims.kid);
    if (!key) return { refusal: "unknown_key", claims };
    const now = Math.floor(Date.now() / 1000);
    if (key.exp && now >= key.exp) return { refusal: "retired_key", claims };
    if (!window.crypto || !crypto.subtle) return { unsupported: true, claims };
    let ok;
    try {
      const pub = await crypto.subtle.importKey("raw", b64url(key.x), { name: "Ed25519" }, false, ["verify"]);
      ok = await crypto.subtle.verify({ name: "Ed25519" }, pub, claims.signature, claims.body);
    } catch (e) {
      return { unsupported: true, claims };
    }
    if (!ok) return { refusal: "bad_signature", claims };
    if (now >= claims.expires || claims.issued > now + SKEW) return { refusal: "expired", claims };
    return { claims };
  }

  function row(label, value) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    details.append(dt, dd);
  }

  function show(result) {
    box.hidden = false;
    details.replaceChildren();
    box.className = "verdict";
    const c = result.claims;
    if (result.unsupported) {
      box.classList.add("refused");
      title.textContent = T["code.no_webcrypto"];
    } else if (result.refusal) {
      box.classList.add("refused");
      title.textContent = T["code.verdict_" + result.refusal];
      box.dataset.refusal = result.refusal;
    } else {
      box.classList.add(c.colour);
      title.textContent = T["code.colour_" + c.colour] + " · " + T["code.verdict_valid"];
      box.dataset.refusal = "";
    }
    box.dataset.colour = c && !result.refusal && !result.unsupported ? c.colour : "";
    if (c) {
      row(T["code.expires_label"], new Date(c.expires * 1000).toLocaleString());
      row(T["code.person_label"], mask(c.person));
      row(T["code.key_label"], c.kid);
    }
  }

  function describeKeys() {
    const n = (jwks.keys || []).length;
    keysState.textContent = n === 0 ? T["code.keys_none"] : (online ? T["code.keys_online"] : T["code.keys_offline"]).replace("{count}", n);
  }

  async function refreshKeys() {
    try {
      const stored = JSON.parse(localStorage.getItem(STORE) || "null");
      if (stored && stored.keys && !(jwks.keys || []).length) jwks = stored;
    } catch (e) { /* storage unavailable: the embedded keys stay */ }
    try {
      const response = await fetch(data.keys_url, { cache: "no-store" });
      if (response.ok) {
        jwks = await response.json();
        online = true;
        try { localStorage.setItem(STORE, JSON.stringify(jwks)); } catch (e) { /* ignore */ }
      }
    } catch (e) {
      online = false;
    }
    describeKeys();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    title.textContent = T["code.checking"];
    show(await verify(input.value));
    input.select();
  });

  // A hardware scanner types the payload and Enter: check at once.
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  // Camera scanning where the browser has a QR detector.
  if ("BarcodeDetector" in window && navigator.mediaDevices) {
    const button = document.getElementById("scan");
    const video = document.getElementById("camera");
    button.hidden = false;
    button.addEventListener("click", async () => {
      const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
      video.srcObject = stream;
      video.hidden = false;
      await video.play();
      const tick = async () => {
        const found = await detector.detect(video).catch(() => []);
        if (found.length) {
          stream.getTracks().forEach((t) => t.stop());
          video.hidden = true;
          input.value = found[0].rawValue;
          form.requestSubmit();
        } else {
          requestAnimationFrame(tick);
        }
      };
      tick();
    });
  }

  window.bastionCheckpoint = { verify, decode };
  describeKeys();
  refreshKeys();
})();
