// Audio worklet processors of the clipsep-rt page (no dependencies).
// "capture": posts each render quantum of its input (mono: the channels averaged) to the page.
// "playback": plays the separated blocks the page posts to it, from a bounded ring buffer.

class Capture extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input.length) {
      const mono = new Float32Array(input[0].length);
      for (const channel of input) {
        for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / input.length;
      }
      this.port.postMessage(mono, [mono.buffer]);
    }
    return true;
  }
}

class Playback extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ring = new Float32Array(sampleRate * 4); // 4 s: a late network never grows it
    this.read = 0;
    this.write = 0;
    this.port.onmessage = (event) => {
      const block = event.data;
      for (let i = 0; i < block.length; i++) {
        this.ring[this.write % this.ring.length] = block[i];
        this.write++;
      }
      if (this.write - this.read > this.ring.length) this.read = this.write - this.ring.length;
    };
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    for (let i = 0; i < out.length; i++) {
      out[i] = this.read < this.write ? this.ring[this.read++ % this.ring.length] : 0;
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    return true;
  }
}

registerProcessor("capture", Capture);
registerProcessor("playback", Playback);
