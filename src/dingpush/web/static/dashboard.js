// The relay's dashboard, live: ask the server for the parts of the page that change and put
// them in place. Plain JavaScript, no build step; the server renders (and escapes) every part.
(function () {
  "use strict";
  var body = document.body;
  var live = document.getElementById("live");

  // The list's filters apply as soon as one is chosen (the Filter button stays for keyboards
  // and for browsers without scripts); "any" filters are left out of the address.
  var filters = document.querySelector("form.filters");
  function applyFilters(event) {
    if (event) {
      event.preventDefault();
    }
    var query = [];
    Array.prototype.forEach.call(filters.elements, function (field) {
      if (field.name && field.value) {
        query.push(encodeURIComponent(field.name) + "=" + encodeURIComponent(field.value));
      }
    });
    window.location.assign(filters.getAttribute("action") + (query.length ? "?" + query.join("&") : ""));
  }
  if (filters) {
    filters.addEventListener("submit", applyFilters);
    Array.prototype.forEach.call(filters.querySelectorAll("select"), function (select) {
      select.addEventListener("change", function () {
        applyFilters(null);
      });
    });
  }

  var url = body.dataset.updatesUrl;
  if (!url || !window.fetch) {
    return;
  }
  var every = Number(body.dataset.pollMs || 1000);
  var shown = {};

  function setLive(state, label) {
    body.dataset.live = state;
    if (live && live.textContent !== label) {
      live.textContent = label;
    }
  }

  function apply(fragments) {
    Object.keys(fragments).forEach(function (id) {
      var element = document.getElementById(id);
      var html = fragments[id];
      // Leave a part alone while it has the keyboard focus: replacing it would lose the focus.
      if (!element || shown[id] === html || element.contains(document.activeElement)) {
        return;
      }
      element.innerHTML = html;
      shown[id] = html;
    });
  }

  function schedule() {
    window.setTimeout(poll, every);
  }

  function poll() {
    if (document.hidden) {
      schedule();
      return;
    }
    fetch(url, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) {
          // The session ended: the page itself now leads to the sign-in form.
          window.location.reload();
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        if (data) {
          apply(data.fragments);
          setLive("on", "live");
        }
      })
      .catch(function () {
        setLive("off", "reconnecting…");
      })
      .then(schedule);
  }

  poll();
})();
