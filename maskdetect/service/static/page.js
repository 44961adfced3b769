// The page's one script: send the chosen file or the pasted URL to /predict, show the answer.
"use strict";

const predictUrl = document.body.dataset.predictUrl;
const figure = document.getElementById("figure");
const preview = document.getElementById("preview");
const result = document.getElementById("result");
const errorBox = document.getElementById("error");
let previewObjectUrl = null;

function showImage(src) {
  if (previewObjectUrl) URL.revokeObjectURL(previewObjectUrl);
  previewObjectUrl = src.startsWith("blob:") ? src : null;
  preview.src = src;
  figure.hidden = false;
  result.textContent = "Checking…";
  result.className = "pending";
  errorBox.hidden = true;
}

function showAnswer(answer) {
  const probability = answer[answer.label];
  const words = answer.label === "with_mask" ? "With mask" : "Without mask";
  result.textContent = `${words}: ${(100 * probability).toFixed(1)} %`;
  result.className = answer.label;
  result.dataset.label = answer.label;
  result.title = `p(with_mask) = ${answer.with_mask} · model ${answer.model}`;
}

function showError(message) {
  result.textContent = "";
  result.className = "";
  delete result.dataset.label;
  errorBox.textContent = message;
  errorBox.hidden = false;
}

async function ask(options) {
  try {
    const response = await fetch(predictUrl, { method: "POST", ...options });
    let body;
    try {
      body = await response.json();
    } catch {
      throw new Error(`the service answered HTTP ${response.status} without JSON`);
    }
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    showAnswer(body);
  } catch (error) {
    showError(`Could not check this image: ${error.message}`);
  }
}

document.getElementById("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  showImage(URL.createObjectURL(file));
  const form = new FormData();
  form.append("image", file);
  ask({ body: form });
});

document.getElementById("url-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const url = document.getElementById("url").value.trim();
  if (!url) return;
  document.getElementById("file").value = "";  // the answer shown is for the URL now
  showImage(url);
  ask({ headers: { "Content-Type": "application/json" }, body: JSON.stringify({ url }) });
});
