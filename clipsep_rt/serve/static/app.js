// The clipsep-rt page: microphone -> /v1/stream -> speakers, live spectrograms, file uploads.
// No dependencies and no build step. window.clipsep holds the counters tests read.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const BLOCK_S = 0.02; // audio per message sent
const RECORD_S = 12; // the first seconds of input and output kept for measureDelay()
const $ = (id) => document.getElementById(id);

function withToken(path) {
  if (!token) return path;
  return `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

// "violin; -speech" -> {queries: ["violin"], exclude: ["speech"]}
function parseQueries(text) {
  const parts = text.split(";").map((part) => part.trim()).filter(Boolean);
  return {
    queries: parts.filter((part) => !part.startsWith("-")),
    exclude: parts.filter((part) => part.startsWith("-")).map((part) => part.slice(1).trim()).filter(Boolean),
  };
}

const state = (window.clipsep = {
  started: false, stopped: false, sampleRate: null, latencySamples: null, latencyMs: null, queries: [],
  sentFrames: 0, receivedFrames: 0, messages: 0, outputEnergy: 0, errors: [], stats: null, uploads: [],
  measureDelay,
});

let context = null, socket = null, micStream = null, capture = null, playback = null;
let inputAnalyser = null, outputAnalyser = null, drawing = false;
let pending = [], pendingFrames = 0, blockFrames = 0, sentSizes = [];
let recordIn = null, recordOut = null, recordedIn = 0, recordedOut = 0;

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function showCounters() {
  const s = state.stats;
  $("counters").textContent =
    `sent ${(state.sentFrames / (state.sampleRate || 1)).toFixed(1)} s, received ${(state.receivedFrames / (state.sampleRate || 1)).toFixed(1)} s` +
    (state.latencyMs !== null ? `, latency ${state.latencyMs.toFixed(0)} ms` : "") +
    (s ? `, hop compute p50 ${s.hop_compute_p50_ms} ms p99 ${s.hop_compute_p99_ms} ms, overruns ${s.overruns}` : "");
}

async function start() {
  $("start").disabled = true;
  try {
    context = new AudioContext();
    await context.audioWorklet.addModule("/static/worklet.js");
    micStream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
  } catch (error) {
    setStatus(`no microphone: ${error}`, true);
    $("start").disabled = false;
    return;
  }
  const rate = context.sampleRate;
  state.sampleRate = rate;
  blockFrames = Math.round(rate * BLOCK_S);
  recordIn = new Float32Array(RECORD_S * rate);
  recordOut = new Float32Array(RECORD_S * rate);
  const source = context.createMediaStreamSource(micStream);
  capture = new AudioWorkletNode(context, "capture", { numberOfOutputs: 1 });
  playback = new AudioWorkletNode(context, "playback", { numberOfInputs: 0, outputChannelCount: [1] });
  inputAnalyser = context.createAnalyser();
  outputAnalyser = context.createAnalyser();
  inputAnalyser.fftSize = outputAnalyser.fftSize = 1024;
  const mute = context.createGain();
  mute.gain.value = 0; // the capture node is pulled through a silent path
  source.connect(capture).connect(mute).connect(context.destination);
  source.connect(inputAnalyser);
  playback.connect(outputAnalyser);
  playback.connect(context.destination);
  await context.resume();

  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(withToken(`${scheme}://${location.host}/v1/stream`));
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    socket.send(JSON.stringify({ type: "start", sample_rate: rate, channels: 1, latency: $("latency").value,
                                 ...parseQueries($("queries").value) }));
  };
  socket.onmessage = (event) => (typeof event.data === "string" ? onText(JSON.parse(event.data)) : onAudio(event.data));
  socket.onclose = (event) => {
    if (!state.stopped) setStatus(`closed (${event.code}${event.reason ? ": " + event.reason : ""})`, event.code !== 1000);
    finish();
  };
  capture.port.onmessage = (event) => onCaptured(event.data);
  $("stop").disabled = false;
  if (!drawing) {
    drawing = true;
    requestAnimationFrame(draw);
  }
}

function onText(message) {
  if (message.type === "started") {
    state.started = true;
    state.latencySamples = message.latency_samples;
    state.latencyMs = message.latency_ms;
    state.queries = message.queries;
    $("apply").disabled = false;
    setStatus(`separating ${message.queries.join(", ")} at ${message.sample_rate} Hz, latency ${message.latency_ms.toFixed(0)} ms ` +
              `(protocol ${message.version})`);
  } else if (message.type === "queries") {
    state.queries = message.queries;
    setStatus(`now separating ${message.queries.join(", ")}`);
  } else if (message.type === "stats") {
    state.stats = message;
  } else if (message.type === "stopped") {
    state.stats = message.stats;
    state.stopped = true;
    setStatus("stopped");
  } else if (message.type === "error") {
    state.errors.push(message.message);
    setStatus(message.message, true);
  }
  showCounters();
}

function onCaptured(block) {
  if (!state.started || state.stopped || socket.readyState !== WebSocket.OPEN) return;
  pending.push(block);
  pendingFrames += block.length;
  if (pendingFrames < blockFrames) return;
  const frames = new Float32Array(pendingFrames);
  let offset = 0;
  for (const piece of pending) {
    frames.set(piece, offset);
    offset += piece.length;
  }
  pending = [];
  pendingFrames = 0;
  socket.send(frames.buffer);
  sentSizes.push(frames.length);
  state.sentFrames += frames.length;
  recordedIn = keep(recordIn, recordedIn, frames);
}

function onAudio(buffer) {
  const out = new Float32Array(buffer); // query-major: each query's frames in turn
  const frames = sentSizes.length ? sentSizes.shift() : state.latencySamples; // the stop's tail: latency_samples
  const first = out.subarray(0, frames);
  playback.port.postMessage(first.slice());
  state.receivedFrames += frames;
  state.messages += 1;
  for (let i = 0; i < first.length; i++) state.outputEnergy += first[i] * first[i];
  recordedOut = keep(recordOut, recordedOut, first);
  if (state.messages % 10 === 0) showCounters();
}

function keep(record, recorded, frames) {
  const room = Math.min(frames.length, record.length - recorded);
  if (room > 0) record.set(frames.subarray(0, room), recorded);
  return recorded + Math.max(room, 0);
}

function stop() {
  $("stop").disabled = true;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "stop" }));
}

function finish() {
  $("stop").disabled = true;
  $("apply").disabled = true;
  $("start").disabled = false;
  if (micStream) micStream.getTracks().forEach((track) => track.stop());
  showCounters();
}

function applyQueries() {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "queries", ...parseQueries($("queries").value) }));
  }
}

// The delay between the recorded input and output, in ms: the lag that best matches their
// envelopes (1 ms steps, up to maxMs), from the first RECORD_S seconds of the session.
function measureDelay(maxMs = 1500) {
  const rate = state.sampleRate;
  const step = Math.max(1, Math.round(rate / 1000));
  const envelope = (record, length) => {
    const n = Math.floor(length / step);
    const env = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let j = 0; j < step; j++) sum += Math.abs(record[i * step + j]);
      env[i] = sum / step;
    }
    const mean = env.reduce((a, b) => a + b, 0) / Math.max(n, 1);
    return env.map((value) => value - mean);
  };
  const length = Math.min(recordedIn, recordedOut);
  const input = envelope(recordIn, length), output = envelope(recordOut, length);
  let best = 0, bestScore = -Infinity;
  for (let lag = 0; lag <= Math.min(maxMs, input.length - 1000); lag++) {
    let score = 0, norm = 0;
    for (let i = 0; i + lag < output.length; i++) {
      score += input[i] * output[i + lag];
      norm += output[i + lag] * output[i + lag];
    }
    score /= Math.sqrt(norm) || 1;
    if (score > bestScore) {
      bestScore = score;
      best = lag;
    }
  }
  return (best * step * 1000) / rate;
}

function draw() {
  column($("input-spectrogram"), inputAnalyser);
  column($("output-spectrogram"), outputAnalyser);
  if (context && context.state !== "closed") requestAnimationFrame(draw);
  else drawing = false;
}

// Scroll a spectrogram canvas left by one column and draw the analyser's newest spectrum (0-8 kHz).
function column(canvas, analyser) {
  if (!analyser) return;
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, step = 2;
  g.drawImage(canvas, -step, 0);
  const bins = new Uint8Array(analyser.frequencyBinCount);
  analyser.getByteFrequencyData(bins);
  const shown = Math.min(bins.length, Math.round((8000 / (context.sampleRate / 2)) * bins.length));
  for (let y = 0; y < h; y++) {
    const v = bins[Math.floor(((h - 1 - y) / h) * shown)] / 255;
    g.fillStyle = `rgb(${Math.round(255 * Math.min(1, v * 1.6))},${Math.round(200 * v * v)},${Math.round(90 + 120 * v * (1 - v))})`;
    g.fillRect(w - step, y, step, 1);
  }
}

async function upload(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) {
    $("upload-status").textContent = "choose a file first";
    return;
  }
  const form = new FormData();
  const { queries, exclude } = parseQueries($("file-queries").value);
  queries.forEach((query) => form.append("query", query));
  exclude.forEach((query) => form.append("exclude", query));
  form.append("file", file);
  $("upload-status").textContent = `separating ${file.name} ...`;
  const response = await fetch(withToken("/v1/separate"), { method: "POST", body: form });
  const answer = await response.json();
  if (!response.ok) {
    $("upload-status").textContent = answer.message;
    $("upload-status").className = "error";
    return;
  }
  $("upload-status").className = "";
  $("upload-status").textContent = `${answer.filename}: ${answer.duration_s} s at ${answer.sample_rate} Hz ` +
    `(kept ${Math.round(answer.expires_in_s / 60)} min)`;
  state.uploads = answer.results;
  $("results").replaceChildren(...answer.results.map((result) => {
    const row = document.createElement("div");
    row.className = "result";
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.src = result.url;
    const link = document.createElement("a");
    link.href = result.url;
    link.download = "";
    link.textContent = ` ${result.query} (download)`;
    row.append(audio, link);
    return row;
  }));
}

$("start").onclick = start;
$("stop").onclick = stop;
$("apply").onclick = applyQueries;
$("queries").onkeydown = (event) => { if (event.key === "Enter") applyQueries(); };
$("upload").onsubmit = upload;
if (params.get("q")) $("queries").value = params.get("q");
if (params.get("latency")) $("latency").value = params.get("latency");
if (params.get("autostart")) start();
