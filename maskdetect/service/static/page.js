// The page's one script: send the chosen file or the pasted URL to /predict (one face, its box
// drawn, its label in words and the three probabilities) or /detect (every face: boxes drawn over
// the image, the count of each label and the share not masked in the caption), show the answer.
// A video goes to /detect too: the clip plays back here with the tracked faces drawn over it in step,
// its people and summary and a chart of the unmasked share over time below. A zone drawn on the clip's
// first frame (or typed) sends it again with ?zone=: only the people seen inside are counted.
// Three labels: with_mask (a mask over nose and mouth), incorrect (a mask below the nose or on the
// chin) and without_mask; incorrect and without_mask both count as not masked.
"use strict";

const endpoints = { predict: document.body.dataset.predictUrl, detect: document.body.dataset.detectUrl };
const labels = ["with_mask", "incorrect", "without_mask"];  // the API's order
const colours = { with_mask: "#1eaa50", incorrect: "#eb8c00", without_mask: "#dc2828", picture: "#8c9196" };  // as in the annotated PNG and video
const words = { with_mask: "With mask", incorrect: "Mask worn incorrectly", without_mask: "Without mask" };
const probabilities = document.getElementById("probabilities");
const figure = document.getElementById("figure");
const imageFrame = document.getElementById("image-frame");
const preview = document.getElementById("preview");
const overlay = document.getElementById("overlay");
let detection = null;  // the faces of the last answer ({faces: [...]}), redrawn when the image (re)lays out
const videoFrame = document.getElementById("video-frame");
const video = document.getElementById("video");
const videoOverlay = document.getElementById("video-overlay");
const playback = document.getElementById("playback");  // a note when the browser cannot play the file
const summary = document.getElementById("summary");
const summaryList = document.getElementById("summary-list");
const peopleHeading = document.getElementById("people-heading");
const peopleList = document.getElementById("people-list");
const chart = document.getElementById("share-chart");
let clip = null;  // the last clip's answer (with tracked_frames), drawn over the video as it plays
const zoneForm = document.getElementById("zone-form");
const zoneCanvas = document.getElementById("zone-canvas");
const zonePoints = document.getElementById("zone-points");
const firstFrame = document.createElement("canvas");  // the clip's first frame, under the zone
let clipFile = null;  // the chosen clip, sent again when the zone changes
let countedZone = "";  // the zone of the answer shown ("": the whole frame)
const result = document.getElementById("result");
const errorBox = document.getElementById("error");
let objectUrl = null;  // the chosen file's, shown as the image or the video
let asked = 0;  // answers to anything but the latest question are dropped

function useObjectUrl(src) {
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = src.startsWith("blob:") ? src : null;
}

function showPending(message) {
  figure.hidden = false;
  delete result.dataset.total;
  delete result.dataset.label;  // set again by the answer
  delete result.dataset.people;
  result.textContent = message;
  result.className = "pending";
  result.title = "";
  probabilities.hidden = true;
  errorBox.hidden = true;
}

function percentOf(p) {
  return `${(100 * p).toFixed(1)} %`;
}

// The worst label among counts ({label: n}): the caption's colour.
function worstOf(counts) {
  return [...labels].reverse().find((label) => counts[label] > 0) || "with_mask";
}

function showImage(src) {
  useObjectUrl(src);
  showVideoFrame(false);
  preview.src = src;
  detection = null;
  drawBoxes();
  showPending("Checking…");
}

function showAnswer(answer) {
  result.textContent = `${words[answer.label]}: ${percentOf(answer[answer.label])}`;
  result.className = answer.label;
  result.dataset.label = answer.label;
  result.title = labels.map((label) => `p(${label}) = ${answer[label]}`).join(" · ") + ` · model ${answer.model}` +
    (answer.face ? "" : " · no face found: the whole image was classified");
  // All three, most probable first in words, in the API's order here.
  probabilities.replaceChildren(...labels.map((label) => {
    const item = document.createElement("li");
    item.dataset.label = label;
    item.className = label === answer.label ? "chosen" : "";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = `${words[label]}:`;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.className = `fill ${label}`;
    fill.style.width = `${100 * answer[label]}%`;  // CSSOM, which the page's style-src 'self' allows
    bar.append(fill);
    item.append(name, bar, ` ${percentOf(answer[label])}`);
    return item;
  }));
  probabilities.hidden = false;
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
  const share = answer.unmasked_ratio === null ? "" : ` (${(100 * answer.unmasked_ratio).toFixed(0)} % not masked)`;
  const pairs = answer.close_pairs.length;
  result.textContent = answer.total === 0
    ? "No face found"
    : `${answer.total} faces: ${answer.with_mask} with mask, ${answer.incorrect} worn incorrectly, ` +
      `${answer.without_mask} without${share}` +
      (pairs ? `; ${pairs} ${pairs === 1 ? "pair" : "pairs"} not masked closer than ${document.body.dataset.closeM} m` : "");
  result.className = worstOf(answer);
  result.dataset.total = answer.total;
  result.dataset.label = "crowd";
  result.title = `model ${answer.model}`;
}

function showError(message) {
  result.textContent = "";
  result.className = "";
  probabilities.hidden = true;
  delete result.dataset.label;
  errorBox.textContent = message;
  errorBox.hidden = false;
}

// POST to the service; the JSON answer, or an Error with the service's own message.
async function post(url, options) {
  const response = await fetch(url, { method: "POST", ...options });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`the service answered HTTP ${response.status} without JSON`);
  }
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

async function ask(options) {
  const chosen = mode();
  const question = ++asked;
  try {
    const body = await post(endpoints[chosen], options);
    if (question !== asked) return;
    if (chosen === "detect") showDetection(body);
    else showAnswer(body);
  } catch (error) {
    if (question === asked) showError(`Could not check this image: ${error.message}`);
  }
}

// ---------------------------------------------------------------------------- a video clip

function isVideo(file) {
  return file.type.startsWith("video/") || /\.(mp4|m4v|webm|mov|mkv|avi)$/i.test(file.name);
}

function showVideoFrame(shown) {
  videoFrame.hidden = !shown;
  imageFrame.hidden = shown;
  summary.hidden = true;
  playback.hidden = true;
  clip = null;
  if (!shown) {
    video.removeAttribute("src");
    video.load();
    zoneForm.hidden = true;
  }
  drawClip(0);
}

// zone: the corners' text ("" for the whole frame), sent as ?zone=.
async function askVideo(file, zone = "") {
  const question = ++asked;
  const src = URL.createObjectURL(file);
  useObjectUrl(src);
  showVideoFrame(true);
  zoneForm.hidden = false;
  video.src = src;  // the visitor's own file plays back; the service answers where the faces are
  showPending(zone ? "Analysing the clip in the zone…" : "Analysing the clip…");
  try {
    const body = await post(`${endpoints.detect}?frames=1` + (zone ? `&zone=${encodeURIComponent(zone)}` : ""), {
      headers: { "Content-Type": file.type || "video/mp4" },
      body: file,
    });
    if (question !== asked) return;
    countedZone = zone;
    showClip(body);
  } catch (error) {
    if (question !== asked) return;
    videoFrame.hidden = true;  // no answer to play back
    showError(`Could not check this video: ${error.message}`);
  }
}

function percent(share) {
  return share === null ? "–" : `${(100 * share).toFixed(0)} %`;
}

function showClip(answer) {
  clip = answer;
  const unmasked = answer.unique_unmasked_people;
  const byLabel = answer.people_by_label;
  const zones = answer.zones || { include: [], ignore: [] };  // where the service counted
  const inZones = zones.include.length + zones.ignore.length > 0;
  result.textContent = answer.unique_people === 0
    ? (inZones ? "Nobody counted in the zone" : "No face found in the clip")
    : `${answer.unique_people} ${answer.unique_people === 1 ? "person" : "people"}, ${unmasked} not masked`;
  result.className = worstOf(byLabel);
  result.dataset.label = "video";
  result.dataset.people = answer.unique_people;
  result.title = `model ${answer.model}`;
  const encounters = answer.close_encounters.map((e) =>
    `#${e.people[0]} and #${e.people[1]}, ${e.start_s.toFixed(1)}–${e.end_s.toFixed(1)} s ` +
    `(${e.duration_s.toFixed(1)} s, closest ${e.closest_m.toFixed(1)} m)`);
  const lines = [
    `Unique people: ${answer.unique_people}: ` + labels.map((label) => `${byLabel[label]} ${words[label].toLowerCase()}`).join(", "),
    `Unique unmasked people: ${unmasked} (a mask worn incorrectly, or none)`,
    `Unmasked share: ${percent(answer.unmasked_share)}`,
    `Unmasked people closer than ${document.body.dataset.closeM} m: ` + (encounters.length ? encounters.join("; ") : "never"),
    `Pictures of faces, fixed to the scene (posters, screens; grey, not counted): ` +
      (answer.pictures.length ? answer.pictures.map((p) => `#${p.id}, ${p.first_s.toFixed(1)}–${p.last_s.toFixed(1)} s`).join("; ") : "none"),
    `${answer.seconds.toFixed(1)} s clip, ${answer.frames} frames analysed`,
    "Counted: " + (inZones ? [
      ...zones.include.map((zone) => `in the zone ${cornersText(zone)}`),
      ...zones.ignore.map((zone) => `not in ${cornersText(zone)}`)].join("; ") : "everywhere in the frame"),
  ];
  summaryList.replaceChildren(...lines.map((line) => {
    const item = document.createElement("li");
    item.textContent = line;
    return item;
  }));
  // Each person, in their label's colour, with the three probabilities pooled over their frames.
  peopleList.replaceChildren(...answer.people.map((person) => {
    const item = document.createElement("li");
    item.dataset.label = person.label;
    const swatch = document.createElement("span");
    swatch.className = `swatch ${person.label}`;
    const shares = labels.map((label) => `${words[label].toLowerCase()} ${(100 * person[label]).toFixed(0)} %`).join(", ");
    item.append(swatch, `#${person.id} ${words[person.label]} (${shares}), ` +
      `${person.first_s.toFixed(1)}–${person.last_s.toFixed(1)} s`);
    return item;
  }));
  peopleHeading.hidden = peopleList.hidden = answer.people.length === 0;
  summary.hidden = false;
  drawClip(video.currentTime);
}

// The tracked frame nearest to time t (seconds of the clip).
function frameAt(t) {
  let nearest = null;
  for (const frame of clip.tracked_frames) {
    if (!nearest || Math.abs(frame.t - t) < Math.abs(nearest.t - t)) nearest = frame;
  }
  return nearest;
}

// The faces of the frame on screen over the video, and the chart's marker, at time t.
function drawClip(t) {
  const context = videoOverlay.getContext("2d");
  videoOverlay.width = video.clientWidth;
  videoOverlay.height = video.clientHeight;
  context.clearRect(0, 0, videoOverlay.width, videoOverlay.height);
  drawChart(t);
  const frame = clip && video.videoWidth ? frameAt(t) : null;
  if (!frame) return;
  // Boxes are pixels of the video; the picture is fitted into the element, centred.
  const scale = Math.min(video.clientWidth / video.videoWidth, video.clientHeight / video.videoHeight);
  const left = (video.clientWidth - scale * video.videoWidth) / 2;
  const top = (video.clientHeight - scale * video.videoHeight) / 2;
  const people = new Set(clip.people.map((person) => person.id));  // the others: dashed, the tracker doubts they are faces
  const pictures = new Set(clip.pictures.map((picture) => picture.id));  // fixed to the scene: grey
  const boxes = new Map(frame.faces.map((face) => [face.id, face.box.map((v, i) => v * scale + (i % 2 ? top : left))]));
  context.lineWidth = 2;
  context.font = "12px system-ui, sans-serif";
  for (const face of frame.faces) {
    const [xmin, ymin, xmax, ymax] = boxes.get(face.id);
    context.strokeStyle = context.fillStyle = pictures.has(face.id) ? colours.picture : colours[face.track_label];
    context.setLineDash(people.has(face.id) || pictures.has(face.id) ? [] : [4, 3]);
    context.strokeRect(xmin, ymin, xmax - xmin, ymax - ymin);
    context.fillText(`#${face.id}: ${face.track_with_mask.toFixed(2)}`, xmin, Math.max(10, ymin - 3));
  }
  context.strokeStyle = colours.without_mask;
  context.setLineDash([]);
  for (const pair of frame.close_pairs) {  // from the centre of one face to the other's
    const [a, b] = [boxes.get(pair.a), boxes.get(pair.b)].map(([x0, y0, x1, y1]) => [(x0 + x1) / 2, (y0 + y1) / 2]);
    context.beginPath();
    context.moveTo(...a);
    context.lineTo(...b);
    context.stroke();
  }
}

// A step line of share_over_time (gaps where nobody was in view), 0 to 100 %, and a marker at time t.
function drawChart(t) {
  const context = chart.getContext("2d");
  chart.width = chart.clientWidth;
  chart.height = chart.clientHeight;
  context.clearRect(0, 0, chart.width, chart.height);
  if (!clip || !clip.seconds) return;
  const [left, right, top, bottom] = [40, chart.width - 8, 8, chart.height - 20];
  const x = (s) => left + (right - left) * Math.min(s, clip.seconds) / clip.seconds;
  const y = (share) => bottom - (bottom - top) * share;
  context.font = "11px system-ui, sans-serif";
  context.fillStyle = "#5b6472";
  context.strokeStyle = "#d5dae1";
  context.lineWidth = 1;
  for (const share of [0, 0.5, 1]) {
    context.beginPath();
    context.moveTo(left, y(share));
    context.lineTo(right, y(share));
    context.stroke();
    context.fillText(percent(share), 2, y(share) + 4);
  }
  context.fillText("0 s", left, chart.height - 4);
  context.fillText(`${clip.seconds.toFixed(1)} s`, right - 30, chart.height - 4);
  context.strokeStyle = colours.without_mask;
  context.lineWidth = 2;
  context.beginPath();
  let previous = null;
  for (const row of clip.share_over_time) {
    if (row.unmasked_share !== null) {
      if (previous === null) context.moveTo(x(row.start_s), y(row.unmasked_share));
      else context.lineTo(x(row.start_s), y(row.unmasked_share));
      context.lineTo(x(row.end_s), y(row.unmasked_share));
    }
    previous = row.unmasked_share;
  }
  context.stroke();
  context.strokeStyle = "#2456c9";  // now
  context.beginPath();
  context.moveTo(x(t), top);
  context.lineTo(x(t), bottom);
  context.stroke();
}

// In step with playback: on every frame shown where the browser says so, else on timeupdate; and on seeking.
function followVideo(now, metadata) {
  drawClip(metadata.mediaTime);
  video.requestVideoFrameCallback(followVideo);
}

if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(followVideo);
else video.addEventListener("timeupdate", () => drawClip(video.currentTime));
video.addEventListener("seeked", () => drawClip(video.currentTime));
video.addEventListener("loadedmetadata", () => drawClip(video.currentTime));
video.addEventListener("error", () => {
  playback.hidden = !video.getAttribute("src");  // e.g. MPEG-4 part 2 or AVI: the service reads them, browsers do not
});

// ---------------------------------------------------------------------------- a zone to count in

function cornersText(corners) {
  return corners.map(([x, y]) => `${x},${y}`).join(" ");
}

// The corners typed or clicked, as [x, y] in the video's pixels (what is not x,y is the service's to explain).
function zoneCorners() {
  return zonePoints.value.trim().split(/[\s;]+/).map((pair) => pair.split(",").map(Number))
    .filter((corner) => corner.length === 2 && corner.every(Number.isFinite));
}

// The first frame, fitted to the form's width, and the zone over it: its edges, its corners, its inside tinted.
function drawZone() {
  if (!firstFrame.width || !zoneCanvas.clientWidth) {
    zoneCanvas.height = 0;
    return;
  }
  zoneCanvas.width = zoneCanvas.clientWidth;
  zoneCanvas.height = Math.round(zoneCanvas.width * firstFrame.height / firstFrame.width);
  const scale = zoneCanvas.width / firstFrame.width;
  const context = zoneCanvas.getContext("2d");
  context.drawImage(firstFrame, 0, 0, zoneCanvas.width, zoneCanvas.height);
  const corners = zoneCorners().map(([x, y]) => [x * scale, y * scale]);
  if (!corners.length) return;
  context.strokeStyle = context.fillStyle = "#2456c9";
  context.lineWidth = 2;
  context.beginPath();
  corners.forEach(([x, y], index) => (index ? context.lineTo(x, y) : context.moveTo(x, y)));
  context.closePath();
  context.stroke();
  context.globalAlpha = 0.2;
  context.fill();
  context.globalAlpha = 1;
  for (const [x, y] of corners) {
    context.beginPath();
    context.arc(x, y, 4, 0, 2 * Math.PI);
    context.fill();
  }
}

function chooseClip(file) {
  clipFile = file;
  countedZone = zonePoints.value = "";
  firstFrame.width = 0;  // taken again when the new clip's first frame loads
  drawZone();
  askVideo(file);
}

video.addEventListener("loadeddata", () => {
  if (firstFrame.width || !video.videoWidth) return;  // taken already (the clip sent again with a zone)
  firstFrame.width = video.videoWidth;
  firstFrame.height = video.videoHeight;
  firstFrame.getContext("2d").drawImage(video, 0, 0);
  drawZone();
});

zoneCanvas.addEventListener("click", (event) => {
  if (!firstFrame.width) return;
  const scale = firstFrame.width / zoneCanvas.clientWidth;
  const x = Math.min(firstFrame.width, Math.max(0, Math.round(event.offsetX * scale)));
  const y = Math.min(firstFrame.height, Math.max(0, Math.round(event.offsetY * scale)));
  zonePoints.value = `${zonePoints.value.trim()} ${x},${y}`.trim();
  drawZone();
});
zonePoints.addEventListener("input", drawZone);

zoneForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (clipFile) askVideo(clipFile, zonePoints.value.trim());
});

document.getElementById("zone-clear").addEventListener("click", () => {
  zonePoints.value = "";
  drawZone();
  if (clipFile && countedZone) askVideo(clipFile);  // back to counting everywhere
  zonePoints.focus();
});

// ---------------------------------------------------------------------------- wiring

preview.addEventListener("load", drawBoxes);
window.addEventListener("resize", () => {
  drawBoxes();
  drawClip(video.currentTime);
  drawZone();
});

document.getElementById("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  if (isVideo(file)) {
    chooseClip(file);
    return;
  }
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
