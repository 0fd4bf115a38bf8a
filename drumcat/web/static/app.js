// drumcat's review page: one shared audio element, and the review queue's keyboard.
"use strict";

const token = document.querySelector('meta[name="drumcat-token"]').content;
const readOnly = document.querySelector('meta[name="drumcat-read-only"]').content === "yes";
const player = document.getElementById("player");

function play(hash) {
  document.querySelectorAll("button.play.playing").forEach((b) => b.classList.remove("playing"));
  const src = "/audio/" + hash;
  if (!player.src.endsWith(src)) player.src = src;
  player.currentTime = 0;
  player.play().catch(() => {});  // a browser may refuse sound before the first click; the button still works
  document.querySelectorAll(`button.play[data-hash="${hash}"]`).forEach((b) => b.classList.add("playing"));
}
player.addEventListener("ended", () => {
  document.querySelectorAll("button.play.playing").forEach((b) => b.classList.remove("playing"));
});
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.play");
  if (button) play(button.dataset.hash);
});

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json", "X-Drumcat-Token": token },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// --- the review queue ------------------------------------------------------------------------------
const queue = document.getElementById("queue");
if (queue) {
  const rows = () => Array.from(queue.querySelectorAll("tr.sound"));
  const progress = document.getElementById("progress");
  const typed = document.getElementById("typed");
  const typedLabel = document.getElementById("typed-label");
  const undoStack = [];
  let current = 0;
  let reviewed = Number(progress.dataset.reviewed);
  let uncertainLeft = Number(progress.dataset.uncertain);
  const learning = document.getElementById("learning");
  let generation = Number(learning.dataset.generation);
  let polling = false;

  function showProgress() { progress.textContent = `${reviewed} reviewed · ${uncertainLeft} uncertain left`; }
  function showLearning(status) {
    if (!status) return;
    learning.textContent = status.message;
    learning.dataset.state = status.state;
    if (status.generation !== generation) takeRerankedQueue(status.generation);
    if (status.state === "learning" && !polling) {  // a round is running: look again until it is done
      polling = true;
      setTimeout(async () => {
        polling = false;
        try { showLearning(await (await fetch("/api/learning")).json()); } catch (error) { /* next decision */ }
      }, 1500);
    }
  }
  async function takeRerankedQueue(newGeneration) {
    // A round has finished: the rows not decided yet below the current one make way for the queue as
    // the model that just learned ranks it (decided rows, and any skipped above, stay where they are).
    generation = newGeneration;
    const data = await (await fetch("/api/queue/rows")).json();
    rows().slice(current + 1).filter((row) => !row.classList.contains("decided")).forEach((row) => row.remove());
    const onPage = new Set(rows().map((row) => row.dataset.hash));
    const holder = document.createElement("tbody");
    holder.innerHTML = data.rows;
    const body = queue.tBodies[queue.tBodies.length - 1];
    holder.querySelectorAll("tr.sound").forEach((row) => { if (!onPage.has(row.dataset.hash)) body.appendChild(row); });
    uncertainLeft = data.uncertain;
    queue.dataset.generation = String(generation);
    showProgress();
    select(current);
  }
  function select(index) {
    const all = rows();
    if (!all.length) return;
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((row, i) => row.classList.toggle("current", i === current));
    all[current].scrollIntoView({ block: "nearest" });
  }
  async function decide(label) {
    // The row is taken and the selection moves on at once, so keys pressed while a decision is being
    // saved apply to the next sounds, in order.
    const row = rows()[current];
    if (!row || readOnly) return;
    const shown = row.querySelector("td.label a").textContent;
    const wasDecided = row.classList.contains("decided");
    row.classList.add("decided");
    row.querySelector("td.label a").textContent = label;
    select(current + 1);
    try {
      const result = await post("/api/override", { hash: row.dataset.hash, label });
      if (!wasDecided) { reviewed += 1; if (row.dataset.uncertain === "1") uncertainLeft -= 1; }
      undoStack.push({ row, previous: result.previous, shown, wasDecided });
      showProgress();
      showLearning(result.learning);
    } catch (error) {
      row.querySelector("td.label a").textContent = shown;
      if (!wasDecided) row.classList.remove("decided");
      progress.textContent = "not saved: " + error.message;
    }
  }
  async function undo() {
    const last = undoStack.pop();
    if (!last) return;
    try {
      const result = await post("/api/undo", { hash: last.row.dataset.hash, label: last.previous });
      last.row.querySelector("td.label a").textContent = last.shown;
      if (!last.wasDecided) {
        last.row.classList.remove("decided");
        reviewed -= 1;
        if (last.row.dataset.uncertain === "1") uncertainLeft += 1;
      }
      showProgress();
      showLearning(result.learning);
      select(rows().indexOf(last.row));
    } catch (error) { progress.textContent = "undo failed: " + error.message; }
  }
  typed.addEventListener("submit", (event) => {
    event.preventDefault();
    const label = typedLabel.value.trim();
    typed.hidden = true;
    typedLabel.value = "";
    if (label) decide(label);
  });
  document.addEventListener("keydown", (event) => {
    if (event.target === typedLabel) {
      if (event.key === "Escape") { typed.hidden = true; typedLabel.value = ""; }
      return;
    }
    const core = window.drumcatCore || [];
    if (event.key === " ") { event.preventDefault(); const row = rows()[current]; if (row) play(row.dataset.hash); }
    else if (event.key === "j") select(current + 1);
    else if (event.key === "k") select(current - 1);
    else if (event.key === "u") undo();
    else if (event.key === "/") { event.preventDefault(); typed.hidden = false; typedLabel.focus(); }
    else if (event.key === "0") decide("misc");
    else if (/^[1-9]$/.test(event.key) && Number(event.key) <= core.length) decide(core[Number(event.key) - 1]);
  });
  showProgress();
  select(0);
  showLearning({ message: learning.textContent, state: learning.dataset.state, generation });
}
