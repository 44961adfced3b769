// The page's one script: send the chosen file or the pasted URL to /predict (one face, its box
// drawn) or /detect (every face: boxes drawn over the image, counts in the caption), show the answer.
"use strict";

const endpoints = { predict: document.body.dataset.predictUrl, detect: document.body.dataset.detectUrl };
const colours = { with_mask: "#1eaa50", without_mask: "#dc2828" };  // as in the annotated PNG
const figure = document.getElementById("figure");
const preview = document.getElementById("preview");
const overlay = document.getElementById("overlay");
let detection = null;  // the faces of the last answer ({faces: [...]}), redrawn when the image (re)lays out
const result = document.getElementById("result");
const errorBox = document.getElementById("error");
let previewObjectUrl = null;

function showImage(src) {
  if (previewObjectUrl) URL.revokeObjectURL(previewObjectUrl);
  previewObjectUrl = src.startsWith("blob:") ? src : null;
  preview.src = src;
  figure.hidden = false;
  detection = null;
  drawBoxes();
  delete result.dataset.total;
  delete result.dataset.label;  // set again by the answer
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
  result.title = `p(with_mask) = ${answer.with_mask} · model ${answer.model}` +
    (answer.face ? "" : " · no face found: the whole image was classified");
  // The face the answer is about (null when the whole image was classified).
  detection = answer.face ? { faces: [{ box: answer.face, label: answer.label, with_mask: answer.with_mask }] } : null;
  drawBoxes();
}

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

// Boxes come in pixels of the image as displayed (EXIF applied), as the browser shows it too.
function drawBoxes() {
  const context = overlay.getContext("2d");
  overlay.width = preview.clientWidth;
  overlay.height = preview.clientHeight;
  context.clearRect(0, 0, overlay.width, overlay.height);
  if (!detection || !preview.naturalWidth) return;
  const scale = preview.clientWidth / preview.naturalWidth;
  context.lineWidth = 2;
  context.font = "12px system-ui, sans-serif";
  detection.faces.forEach((face, index) => {
    const [xmin, ymin, xmax, ymax] = face.box.map((v) => v * scale);
    context.strokeStyle = context.fillStyle = colours[face.label];
    context.strokeRect(xmin, ymin, xmax - xmin, ymax - ymin);
    context.fillText(`${index}: ${face.with_mask.toFixed(2)}`, xmin, Math.max(10, ymin - 3));
  });
}

function showDetection(answer) {
  detection = answer;
  drawBoxes();
  const share = answer.unmasked_ratio === null ? "" : ` (${(100 * answer.unmasked_ratio).toFixed(0)} % unmasked)`;
  const pairs = answer.close_pairs.length;
  result.textContent = answer.total === 0
    ? "No face found"
    : `${answer.total} faces: ${answer.with_mask} with mask, ${answer.without_mask} without${share}` +
      (pairs ? `; ${pairs} unmasked ${pairs === 1 ? "pair" : "pairs"} closer than ${document.body.dataset.closeM} m` : "");
  result.className = answer.without_mask ? "without_mask" : "with_mask";
  result.dataset.total = answer.total;
  result.dataset.label = "crowd";
  result.title = `model ${answer.model}`;
}

function showError(message) {
  result.textContent = "";
  result.className = "";
  delete result.dataset.label;
  errorBox.textContent = message;
  errorBox.hidden = false;
}

async function ask(options) {
  const chosen = mode();
  try {
    const response = await fetch(endpoints[chosen], { method: "POST", ...options });
    let body;
    try {
      body = await response.json();
    } catch {
      throw new Error(`the service answered HTTP ${response.status} without JSON`);
    }
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    if (chosen === "detect") showDetection(body);
    else showAnswer(body);
  } catch (error) {
    showError(`Could not check this image: ${error.message}`);
  }
}

preview.addEventListener("load", drawBoxes);
window.addEventListener("resize", drawBoxes);

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
