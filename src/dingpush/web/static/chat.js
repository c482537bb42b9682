// The emulator's chat view, live: listen to the server's change events, then fetch what is new.
// Plain JavaScript, no build step. The server renders (and escapes) every fragment.
(function () {
  "use strict";
  var body = document.body;
  var updatesUrl = body.dataset.updatesUrl;
  var list = document.getElementById("messages");
  var live = document.getElementById("live");
  if (!updatesUrl || !list) {
    return;
  }
  var lastId = Number(body.dataset.lastId || 0);
  var count = Number(body.dataset.count || 0);
  var version = body.dataset.version;
  var busy = false;
  var again = false;

  function setLive(state, label) {
    body.dataset.live = state;
    if (live) {
      live.textContent = label;
    }
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 120;
  }

  function scrollToBottom() {
    list.scrollTop = list.scrollHeight;
  }

  function replace(id, html) {
    var element = document.getElementById(id);
    if (element) {
      element.innerHTML = html;
    }
  }

  function apply(data) {
    if (data.count < count) {
      // The emulator was reset: start again from the server's page.
      window.location.reload();
      return;
    }
    var stick = nearBottom();
    data.messages.forEach(function (html) {
      list.insertAdjacentHTML("beforeend", html);
    });
    lastId = Math.max(lastId, data.last_id);
    count = data.count;
    version = data.version;
    body.dataset.lastId = String(lastId);
    body.dataset.count = String(count);
    body.dataset.version = version;
    replace("rejections", data.rejections);
    replace("conversations", data.conversations);
    replace("robots", data.robots);
    replace("dings", data.dings);
    Object.keys(data.states || {}).forEach(function (id) {
      var element = document.getElementById("state-" + id);
      if (element) {
        element.outerHTML = data.states[id];
      }
    });
    var empty = document.getElementById("no-messages");
    if (empty) {
      empty.hidden = count > 0;
    }
    if (stick && data.messages.length) {
      scrollToBottom();
    }
  }

  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(updatesUrl + "?after=" + lastId, { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 404) {
          window.location.href = body.dataset.homeUrl;
          return null;
        }
        return response.json();
      })
      .then(function (data) {
        if (data) {
          apply(data);
        }
      })
      .catch(function () {
        setLive("off", "reconnecting…");
      })
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  scrollToBottom();
  if (window.EventSource) {
    var source = new EventSource(body.dataset.eventsUrl);
    source.addEventListener("open", function () {
      setLive("on", "live");
    });
    source.addEventListener("error", function () {
      setLive("off", "reconnecting…");
    });
    source.addEventListener("change", function (event) {
      if (JSON.parse(event.data) !== version) {
        refresh();
      }
    });
  } else {
    setLive("on", "live (polling)");
    window.setInterval(refresh, 1000);
  }
})();
