// The door scanner: camera (BarcodeDetector, else the vendored jsQR), a code field for hand
// scanners and typing, search by name, and big colour-coded answers with sound and vibration.
// Every scan is POST /api/checkin with a nonce of its own: a retry after a lost answer sends the
// same nonce and gets the same answer, never a second check-in.
(function () {
  "use strict";

  var body = document.body;
  var T = JSON.parse(document.getElementById("door-strings").textContent);
  var pick = document.querySelector("[data-autosubmit]");
  if (pick) pick.addEventListener("change", function () { pick.form.submit(); });
  if (!body.dataset.sessionId) return;

  var sessionId = Number(body.dataset.sessionId);
  var locale = body.dataset.locale === "vi" ? "vi-VN" : "en-GB";
  var video = document.getElementById("door-video");
  var canvas = document.getElementById("door-canvas");
  var note = document.getElementById("door-camera-note");
  var startButton = document.getElementById("door-camera-start");
  var result = document.getElementById("door-result");
  var collectButton = document.getElementById("door-collect");
  var undoButton = document.getElementById("door-undo");
  var nextButton = document.getElementById("door-next");
  var codeForm = document.getElementById("door-code-form");
  var codeInput = document.getElementById("door-code");
  var searchInput = document.getElementById("door-search-input");
  var searchResults = document.getElementById("door-search-results");
  var expectedList = document.getElementById("door-expected-list");
  var expectedCount = document.getElementById("door-expected-count");
  var countText = document.getElementById("door-count-text");

  var busy = false;          // a request or an answer on screen: the camera waits
  var lastCode = "", lastAt = 0;
  var current = null;        // the answer on screen
  var dismissTimer = null;
  var cameraOn = false;

  // The code field takes a hand scanner's keystrokes; on a phone that films tickets, focusing it
  // would only open the keyboard over the camera, so it waits for a tap there.
  function focusField() {
    if (!cameraOn || (window.matchMedia && window.matchMedia("(pointer: fine)").matches)) codeInput.focus();
  }

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_m, key) { return values[key] == null ? "" : values[key]; });
  }
  function vnd(amount) {
    return String(Math.round(amount)).replace(/\B(?=(\d{3})+(?!\d))/g, ".") + " \u20ab";
  }
  function time(iso) {
    if (!iso) return "";
    try {
      return new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: body.dataset.tz }).format(new Date(iso));
    } catch (e) { return iso.slice(11, 16); }
  }
  function dateTime(iso) {
    try {
      return new Intl.DateTimeFormat(locale, { weekday: "short", day: "numeric", month: "numeric", hour: "2-digit", minute: "2-digit", hour12: false, timeZone: body.dataset.tz }).format(new Date(iso));
    } catch (e) { return iso; }
  }
  function nonce() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var a = new Uint8Array(16); crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  // --- feedback: colour, sound, vibration ---------------------------------------------------
  var audio = null;
  function beep(kind) {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var tones = kind === "green" ? [[880, 0, 0.12], [1320, 0.12, 0.16]] : kind === "amber" ? [[520, 0, 0.2], [520, 0.3, 0.2]] : [[220, 0, 0.45]];
      tones.forEach(function (t) {
        var osc = audio.createOscillator(), gain = audio.createGain();
        osc.type = kind === "red" ? "square" : "sine";
        osc.frequency.value = t[0];
        gain.gain.value = 0.25;
        osc.connect(gain); gain.connect(audio.destination);
        osc.start(audio.currentTime + t[1]); osc.stop(audio.currentTime + t[1] + t[2]);
      });
    } catch (e) { /* no sound on this device */ }
    if (navigator.vibrate) navigator.vibrate(kind === "green" ? 80 : kind === "amber" ? [120, 80, 120] : [300, 100, 300]);
  }
  var COLOURS = { ok: "green", already: "amber", unpaid: "amber", wrong_time: "amber", wrong_session: "red", cancelled: "red", invalid: "red", error: "red" };

  function show(answer) {
    current = answer;
    var status = answer.status;
    var colour = COLOURS[status] || "red";
    var partial = status === "ok" && answer.people_in < answer.people_total;
    result.className = "door-result " + colour;
    result.dataset.status = status;
    document.getElementById("door-result-title").textContent = partial ? T.ok_partial : (T[status] || T.error);
    document.getElementById("door-result-name").textContent = answer.player ? answer.player.name : "";
    var detail = [];
    if (answer.booking) detail.push(answer.booking.code);
    if (status === "ok" || status === "already" || status === "unpaid") {
      detail.push(fill(T.people_in, { n: answer.people_in, m: answer.people_total }));
    }
    if (status === "already" && answer.checked_in_at) {
      detail.push(answer.checked_in_by ? fill(T.at_by, { time: time(answer.checked_in_at), name: answer.checked_in_by.name }) : fill(T.at, { time: time(answer.checked_in_at) }));
    }
    if (status === "unpaid") detail.push(fill(T.to_collect, { amount: vnd(answer.amount_due) }));
    if (status === "wrong_time") detail.push(answer.reason === "ended" ? T.ended : answer.message);
    if (status === "wrong_session" && answer.session) detail.push(fill(T.for_session, { title: answer.session.title, time: dateTime(answer.session.starts_at) }));
    if (status === "cancelled") detail.push(T.booking_cancelled);
    if (status === "error") detail.push(answer.message || T.offline);
    document.getElementById("door-result-detail").textContent = detail.join(" · ");
    collectButton.hidden = status !== "unpaid";
    if (status === "unpaid") collectButton.textContent = fill(T.collect, { amount: vnd(answer.amount_due) });
    undoButton.hidden = status !== "ok";
    result.hidden = false;
    result.focus();
    beep(colour);
    if (answer.session_people) updateCount(answer.session_people.people_in, answer.session_people.people_total);
    clearTimeout(dismissTimer);
    if (colour === "green") dismissTimer = setTimeout(dismiss, 2500);
  }

  function dismiss() {
    clearTimeout(dismissTimer);
    result.hidden = true;
    current = null;
    busy = false;
    lastAt = Date.now();  // the ticket still in front of the camera is not read again at once
    focusField();
  }

  function updateCount(inside, total) {
    countText.textContent = countText.textContent.replace(/\d+(\D+)\d+/, inside + "$1" + total);
  }

  // --- the API ----------------------------------------------------------------------------------
  function send(method, url, data) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": body.dataset.csrf, "Accept": "application/json" },
      body: data ? JSON.stringify(data) : undefined
    }).then(function (response) {
      return response.json().then(function (json) { return { status: response.status, json: json }; });
    });
  }

  function checkIn(payload, attempt) {
    busy = true;
    payload.session_id = sessionId;
    payload.nonce = payload.nonce || nonce();
    return send("POST", body.dataset.checkinUrl, payload).then(function (r) {
      if (r.json && r.json.status) { show(r.json); refresh(); return; }
      show({ status: "error", message: r.json && r.json.error ? r.json.error.message : "" });
    }, function () {
      if ((attempt || 0) < 2) return checkIn(payload, (attempt || 0) + 1);  // same nonce: safe
      show({ status: "error", message: T.offline });
    });
  }

  function onCode(text) {
    text = (text || "").trim();
    if (!text || busy) return;
    var now = Date.now();
    if (text === lastCode && now - lastAt < 3000) return;
    lastCode = text; lastAt = now;
    checkIn({ code: text });
  }

  collectButton.addEventListener("click", function () {
    if (!current || !current.booking) return;
    var code = current.booking.code;
    result.hidden = true;
    checkIn({ code: code, collect: "cash" });
  });
  undoButton.addEventListener("click", function () {
    if (!current || !current.booking) return;
    send("DELETE", body.dataset.undoUrl.replace(/0$/, String(current.booking.id))).then(function (r) {
      if (r.status === 200) {
        document.getElementById("door-result-title").textContent = T.undone;
        result.className = "door-result amber";
        undoButton.hidden = true;
        refresh();
      } else {
        document.getElementById("door-result-detail").textContent = r.json.error ? r.json.error.message : T.error;
      }
    });
  });
  nextButton.addEventListener("click", dismiss);
  result.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === "Escape") { e.preventDefault(); dismiss(); } });

  // A hand scanner types the code and presses Enter: the form's submit.
  codeForm.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = codeInput.value;
    codeInput.value = "";
    lastCode = ""; // typed on purpose: never ignored as a repeat
    onCode(text);
  });

  // --- who is expected, search -------------------------------------------------------------
  function row(item) {
    var li = document.createElement("li");
    var name = document.createElement("span");
    name.className = "door-list-name";
    name.textContent = item.name;
    var meta = document.createElement("span");
    meta.className = "door-list-meta";
    meta.textContent = item.code + " · " + fill(T.people_in, { n: item.people_in, m: item.slots }) + (item.payment_status !== "paid" && item.amount > 0 ? " · " + T.unpaid : "");
    li.appendChild(name); li.appendChild(meta);
    var left = item.slots - item.people_in;
    if (left > 0 && (item.status === "confirmed" || item.status === "pending_payment")) {
      var controls = document.createElement("span");
      controls.className = "door-list-controls";
      var select = null;
      if (left > 1) {  // a party may arrive apart: how many are here now
        select = document.createElement("select");
        select.setAttribute("aria-label", T.people);
        for (var n = left; n >= 1; n--) {
          var option = document.createElement("option");
          option.value = String(n); option.textContent = String(n);
          select.appendChild(option);
        }
        controls.appendChild(select);
      }
      var button = document.createElement("button");
      button.type = "button";
      button.className = "door-button small";
      button.textContent = T.check_in;
      button.addEventListener("click", function () {
        var payload = { code: item.code };
        if (select) payload.people = Number(select.value);
        checkIn(payload);
      });
      controls.appendChild(button);
      li.appendChild(controls);
    }
    return li;
  }

  function refresh() {
    send("GET", body.dataset.sessionUrl).then(function (r) {
      if (r.status !== 200) return;
      updateCount(r.json.people_in, r.json.people_total);
      expectedCount.textContent = String(r.json.expected.length);
      expectedList.replaceChildren.apply(expectedList, r.json.expected.map(row));
      if (!r.json.expected.length) {
        var li = document.createElement("li"); li.textContent = T.everyone_in; expectedList.appendChild(li);
      }
    });
  }

  var searchTimer = null;
  searchInput.addEventListener("input", function () {
    clearTimeout(searchTimer);
    var q = searchInput.value.trim();
    if (q.length < 3) { searchResults.replaceChildren(); return; }
    searchTimer = setTimeout(function () {
      send("GET", body.dataset.sessionUrl + "?q=" + encodeURIComponent(q)).then(function (r) {
        if (r.status !== 200) return;
        searchResults.replaceChildren.apply(searchResults, r.json.items.map(row));
        if (!r.json.items.length) {
          var li = document.createElement("li"); li.textContent = T.no_results; searchResults.appendChild(li);
        }
      });
    }, 200);
  });

  // --- the camera ------------------------------------------------------------------------------
  var detector = null, jsQR = null;

  function loadJsQR() {
    return new Promise(function (resolve, reject) {
      if (window.jsQR) return resolve(window.jsQR);
      var script = document.createElement("script");
      script.src = body.dataset.jsqr;
      script.onload = function () { resolve(window.jsQR); };
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }

  function chooseDecoder() {
    if ("BarcodeDetector" in window) {
      return window.BarcodeDetector.getSupportedFormats().then(function (formats) {
        if (formats.indexOf("qr_code") >= 0) { detector = new window.BarcodeDetector({ formats: ["qr_code"] }); return; }
        return loadJsQR().then(function (f) { jsQR = f; });
      }, function () { return loadJsQR().then(function (f) { jsQR = f; }); });
    }
    return loadJsQR().then(function (f) { jsQR = f; });
  }

  function scanFrame() {
    if (busy || video.readyState < 2) return Promise.resolve();
    if (detector) {
      return detector.detect(video).then(function (codes) { if (codes.length) onCode(codes[0].rawValue); }, function () {});
    }
    if (!jsQR) return Promise.resolve();
    var scale = Math.min(1, 640 / (video.videoWidth || 640));
    var w = Math.round((video.videoWidth || 640) * scale), h = Math.round((video.videoHeight || 480) * scale);
    canvas.width = w; canvas.height = h;
    var ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, w, h);
    var found = jsQR(ctx.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: "dontInvert" });
    if (found && found.data) onCode(found.data);
    return Promise.resolve();
  }

  function loop() {
    scanFrame().then(function () { setTimeout(loop, 150); });
  }

  function startCamera() {
    note.hidden = true;
    startButton.hidden = true;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      note.textContent = window.isSecureContext ? T.camera_off : T.camera_https;
      note.hidden = false;
      return;
    }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: { ideal: "environment" } }, audio: false })
      .then(function (stream) {
        video.srcObject = stream;
        return video.play();
      })
      .then(chooseDecoder)
      .then(function () { cameraOn = true; loop(); })
      .catch(function () {
        note.textContent = T.camera_off;
        note.hidden = false;
        startButton.hidden = false;
      });
  }
  startButton.addEventListener("click", startCamera);

  refresh();
  startCamera();
  focusField();
})();
