// The verify page: send the chosen file to /api/verify and show the answer.
// The answer's HTML is rendered (and escaped) by the server's provenance.report,
// the same renderer as `provenance verify --html`.
"use strict";

(function () {
  const input = document.getElementById("file");
  const drop = document.getElementById("drop");
  const status = document.getElementById("status");
  const error = document.getElementById("error");
  const result = document.getElementById("result");
  const form = document.getElementById("form");

  function size(bytes) {
    if (bytes < 1024 * 1024) return Math.ceil(bytes / 1024) + " KB";
    return (bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, "") + " MB";
  }

  function showError(title, detail) {
    const heading = document.createElement("h2");
    heading.textContent = title;
    const text = document.createElement("p");
    text.textContent = detail;
    error.replaceChildren(heading, text);
    error.hidden = false;
  }

  async function check(file) {
    error.hidden = true;
    error.replaceChildren();
    result.replaceChildren();
    const maxBytes = Number(form.dataset.maxBytes);
    if (maxBytes > 0 && file.size > maxBytes) {
      // Refused here: the server would cut the upload off, which a browser reports as a network error.
      status.textContent = "";
      showError("This file is too large for this checker",
        file.name + " is " + size(file.size) + "; this checker accepts files up to " + size(maxBytes) + ".");
      return;
    }
    result.setAttribute("aria-busy", "true");
    status.textContent = "Checking " + file.name + "…";
    let response;
    let payload = null;
    try {
      response = await fetch("/api/verify?name=" + encodeURIComponent(file.name), {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream" },
        body: file,
      });
      payload = await response.json().catch(() => null);
    } catch (err) {
      result.removeAttribute("aria-busy");
      status.textContent = "";
      showError("Could not reach the checker", "The server did not answer. Is it still running?");
      return;
    }
    result.removeAttribute("aria-busy");
    if (!response.ok || payload === null || typeof payload.html !== "string") {
      status.textContent = "";
      const message = payload && payload.error ? payload.error.message : "The server answered " + response.status + ".";
      let title = "This file could not be checked";
      if (response.status === 415) title = "This is not a file the checker can read";
      if (response.status === 413) title = "This file is too large for this checker";
      showError(title, message);
      return;
    }
    result.innerHTML = payload.html;
    const again = document.createElement("button");
    again.type = "button";
    again.className = "again";
    again.textContent = "Check another file";
    again.addEventListener("click", () => {
      input.value = "";
      input.focus();
      input.click();
    });
    result.append(again);
    status.textContent = "Checked " + file.name + ": " + payload.headline + ".";
    const heading = result.querySelector("h2");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  }

  input.addEventListener("change", () => {
    if (input.files && input.files.length > 0) check(input.files[0]);
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = event.dataTransfer ? event.dataTransfer.files : null;
    if (files && files.length > 0) check(files[0]);
  });
  // A file dropped outside the zone would otherwise replace the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  form.addEventListener("submit", (event) => event.preventDefault());
})();
