// The dashboard's template playground: send the form to the relay as you type, and show the
// messages it renders (the server renders and escapes them; this only puts them in place).
(function () {
  "use strict";
  var form = document.getElementById("playground");
  if (!form || !window.fetch) {
    return;
  }
  var samples = JSON.parse(form.dataset.samples || "{}");
  var payload = document.getElementById("pg-payload");
  var sample = document.getElementById("pg-sample");
  var kind = document.getElementById("pg-kind");
  var summary = document.getElementById("pg-summary");
  var output = document.getElementById("pg-output");
  var problems = document.getElementById("pg-problems");
  var timer = null;
  var latest = 0;

  function text(tag, content) {
    var element = document.createElement(tag);
    element.textContent = content;
    return element;
  }

  function show(answer) {
    output.innerHTML = "";
    problems.innerHTML = "";
    if (answer.error) {
      summary.textContent = "Not rendered: " + answer.error;
      return;
    }
    var parts = answer.messages.map(function (message) {
      return message.target + ": " + message.bytes.toLocaleString("en") + " bytes, mentions " +
        (message.mentions.length ? message.mentions.join(" ") : "none");
    });
    summary.textContent = answer.messages.length
      ? answer.messages.length + " message(s) — " + parts.join("; ")
      : "No message: no route took it.";
    answer.messages.forEach(function (message) {
      var item = document.createElement("li");
      item.innerHTML = message.html;  // rendered and escaped by the relay
      item.dataset.bytes = String(message.bytes);
      output.appendChild(item);
    });
    answer.problems.concat(answer.render_failures).forEach(function (problem) {
      problems.appendChild(text("li", problem));
    });
  }

  function render() {
    var number = ++latest;
    var body = {
      route: form.elements.route.value,
      template: form.elements.template.value,
      kind: kind.value,
      payload: payload.value
    };
    fetch(form.dataset.renderUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
      body: JSON.stringify(body)
    }).then(function (reply) {
      return reply.json();
    }).then(function (answer) {
      if (number === latest) {
        show(answer);
      }
    }).catch(function () {
      if (number === latest) {
        summary.textContent = "The relay cannot be reached.";
      }
    });
  }

  function soon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(render, 200);
  }

  sample.addEventListener("change", function () {
    var chosen = samples[sample.value];
    if (chosen) {
      payload.value = chosen.body;
      kind.value = chosen.kind;
    }
    render();
  });
  payload.addEventListener("input", function () {
    sample.value = "";
    soon();
  });
  [form.elements.route, form.elements.template, kind].forEach(function (select) {
    select.addEventListener("change", render);
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    render();
  });
  render();
})();
