// The inkloop page: send an image to POST /v1/predict, show the text, send a flag to POST /v1/feedback.
"use strict";
const $ = (id) => document.getElementById(id);
let requestId = null;

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function confidenceClass(c) {
  return c >= 0.9 ? "high" : c >= 0.7 ? "mid" : "low";
}

// A confidence as a percentage that never rounds up to a certainty the model did not state: 0.9991 is "99.9%",
// only 1 is "100%".
function percent(c) {
  return `${(Math.floor(c * 1000) / 10).toFixed(1)}%`;
}

async function read(file) {
  showError("");
  $("result").hidden = true;
  $("preview").src = URL.createObjectURL(file);
  $("preview").hidden = false;
  $("drop-hint").textContent = "Reading…";
  const body = new FormData();
  body.append("image", file, file.name || "image");
  try {
    const response = await fetch("/v1/predict", { method: "POST", body });
    const data = await response.json();
    if (!response.ok) {
      showError(data.error ? data.error.message : `the server answered ${response.status}`);
      return;
    }
    requestId = data.request_id;
    $("text").textContent = data.text || "(no text found)";
    const badge = $("confidence-badge");
    badge.textContent = `confidence ${percent(data.confidence)}`;
    badge.className = `badge ${confidenceClass(data.confidence)}`;
    $("model").textContent = `model ${data.model_version}`;
    $("latency").textContent = `${Math.round(data.latency_ms)} ms`;
    // Each line the model read, with how sure it is of that line: the unsure ones are where to look first.
    const lines = (data.text || "").split("\n");
    $("lines").replaceChildren(...data.line_confidences.map((c, i) => {
      const item = document.createElement("li");
      item.className = confidenceClass(c);
      const words = document.createElement("span");
      words.className = "line-text";
      words.textContent = lines[i] ?? "";
      const sure = document.createElement("span");
      sure.className = "line-confidence";
      sure.textContent = percent(c);
      item.replaceChildren(words, sure);
      return item;
    }));
    $("correction").value = data.text;
    $("feedback-status").textContent = "";
    $("result").hidden = false;
  } catch (err) {
    showError(`could not reach the server: ${err.message}`);
  } finally {
    $("drop-hint").innerHTML = 'Drag another image here, or <button id="choose" type="button">choose a file</button>';
    $("choose").onclick = () => $("file").click();
  }
}

$("choose").onclick = () => $("file").click();
$("file").onchange = (e) => e.target.files[0] && read(e.target.files[0]);
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) read(e.dataTransfer.files[0]);
});

$("feedback").addEventListener("submit", async (e) => {
  e.preventDefault();
  const flag = e.submitter ? e.submitter.dataset.flag : "incorrect";
  const correction = $("correction").value.trim();
  const payload = { request_id: requestId, flag };
  if (correction && correction !== $("text").textContent) payload.correction = correction;
  const response = await fetch("/v1/feedback", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload),
  });
  const data = await response.json();
  $("feedback-status").textContent = response.ok
    ? "Thank you — an annotator will look at this image."
    : `Not sent: ${data.error ? data.error.message : response.status}`;
});
