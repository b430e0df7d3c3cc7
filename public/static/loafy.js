// Loafy: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  function vnd(amount) {
    return String(Math.round(amount)).replace(/\B(?=(\d{3})+(?!\d))/g, ".") + " \u20ab";
  }

  // The booking form's total follows the number of guests.
  document.querySelectorAll("form.book-form[data-price]").forEach(function (form) {
    var price = Number(form.dataset.price);
    var select = form.querySelector("select[name=guest_count]");
    var amount = form.querySelector(".total-amount");
    var people = form.querySelector(".total-people");
    function update() {
      var guests = parseInt(select.value, 10) || 0;
      amount.textContent = vnd((1 + guests) * price);
      people.textContent = String(1 + guests);
    }
    if (amount && people) {  // a free session's form has no total to follow
      select.addEventListener("change", update);
      update();
    }
    // One submit per click: a double tap must not send the form twice.
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]");
      setTimeout(function () { button.disabled = true; }, 0);
    });
  });

  // Ask before cancelling, in a styled dialog (the browser's confirm() is unstyled and English on
  // some phones). The labels come from the page, in its language.
  var labels = document.body.dataset;
  function ask(question, onYes) {
    var dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    var text = document.createElement("p");
    text.textContent = question;
    var row = document.createElement("p");
    row.className = "actions";
    var no = document.createElement("button");
    no.type = "button";
    no.className = "button ghost";
    no.textContent = labels.confirmNo || "No";
    var yes = document.createElement("button");
    yes.type = "button";
    yes.className = "button danger";
    yes.textContent = labels.confirmYes || "Yes";
    row.append(no, yes);
    dialog.append(text, row);
    document.body.appendChild(dialog);
    no.addEventListener("click", function () { dialog.close(); });
    yes.addEventListener("click", function () { dialog.close(); onYes(); });
    dialog.addEventListener("close", function () { dialog.remove(); });
    dialog.showModal();
    no.focus();
  }
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.confirmed) return;
      event.preventDefault();
      ask(form.dataset.confirm, function () {
        form.dataset.confirmed = "1";
        form.requestSubmit ? form.requestSubmit() : form.submit();
      });
    });
  });

  // Live countdowns to payment deadlines.
  // Counted from the seconds the server said were left, so a phone with a wrong clock still shows the truth.
  var loaded = Date.now();
  var clocks = Array.prototype.slice.call(document.querySelectorAll(".countdown[data-left]"));
  function tick() {
    var elapsed = Math.floor((Date.now() - loaded) / 1000);
    clocks.forEach(function (el) {
      var left = Number(el.dataset.left) - elapsed;
      if (left <= 0) {
        el.textContent = el.dataset.done;
        return;
      }
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      var text = (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(s).padStart(2, "0");
      el.textContent = el.dataset.template.replace("__T__", text);
    });
  }
  if (clocks.length) {
    tick();
    setInterval(tick, 1000);
  }
  // door: a staff member who opens a ticket's link checks it in at once (the form holds its own
  // nonce, so a reload gets the same answer). Without this script the button does the same.
  var autosend = document.querySelector("form[data-autosend]");
  if (autosend) autosend.requestSubmit ? autosend.requestSubmit() : autosend.submit();
})();
