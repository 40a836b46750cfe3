// kbsearch search page: keyboard shortcut and in-place feedback. The page works without this file:
// the feedback buttons are plain forms that post to /feedback/ and come back to the same results.
(function () {
  "use strict";

  // "/" jumps to the search box, unless the user is already typing somewhere.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var tag = target && target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable)) return;
    var box = document.getElementById("q");
    if (box) {
      event.preventDefault();
      box.focus();
      box.select();
    }
  });

  // On a phone the filters would push the results below the fold; start them collapsed there.
  document.addEventListener("DOMContentLoaded", function () {
    var filters = document.querySelector(".filters details");
    if (filters && window.matchMedia && window.matchMedia("(max-width: 46rem)").matches) {
      filters.removeAttribute("open");
    }
  });

  // Thumbs up/down go to the API with the session's CSRF token, so the page does not reload.
  function sendFeedback(form, button) {
    var status = form.querySelector(".feedback-status");
    var body = {
      document_id: Number(form.elements.document_id.value),
      query_id: Number(form.elements.query_id.value),
      rank: Number(form.elements.rank.value),
      value: button.value
    };
    var token = form.elements.csrfmiddlewaretoken.value;
    status.classList.remove("failed");
    return fetch("/api/v1/feedback", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token, "Accept": "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      form.querySelectorAll("button.thumb").forEach(function (other) {
        other.setAttribute("aria-pressed", other === button ? "true" : "false");
      });
      status.textContent = document.body.dataset.feedbackThanks;
    }).catch(function () {
      status.classList.add("failed");
      status.textContent = document.body.dataset.feedbackFailed;
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("feedback") || !window.fetch) return;
    var button = event.submitter;
    if (!button || !button.value) return;
    event.preventDefault();
    sendFeedback(form, button);
  });
})();
