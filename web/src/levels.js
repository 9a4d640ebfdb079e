// The console's AudioWorklet: 10 ms peak levels of the microphone (input 0) and the agent's
// track (input 1), measured in the same render quantum so both share one clock, posted to the
// page in batches; with `record`, the samples of both as 16-bit PCM too (for the tests).

const WINDOW = 480; // 10 ms at 48 kHz
const BATCH = 5; // windows per message

function toInt16(block) {
  const out = new Int16Array(128);
  if (!block) return out;
  for (let i = 0; i < block.length; i++) {
    const v = Math.max(-1, Math.min(1, block[i]));
    out[i] = Math.round(v * 32767);
  }
  return out;
}

class BridgeLevels extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.record = Boolean(options.processorOptions?.record);
    this.filled = 0;
    this.micPeak = 0;
    this.agentPeak = 0;
    this.peaks = [];
    this.window = 0;
    this.micSamples = [];
    this.agentSamples = [];
  }

  process(inputs) {
    const mic = inputs[0]?.[0];
    const agent = inputs[1]?.[0];
    const frames = mic?.length ?? agent?.length ?? 128;
    for (let i = 0; i < frames; i++) {
      const m = mic ? Math.abs(mic[i]) : 0;
      const a = agent ? Math.abs(agent[i]) : 0;
      if (m > this.micPeak) this.micPeak = m;
      if (a > this.agentPeak) this.agentPeak = a;
      if (++this.filled === WINDOW) {
        this.peaks.push(this.micPeak, this.agentPeak);
        this.filled = 0;
        this.micPeak = 0;
        this.agentPeak = 0;
      }
    }
    if (this.record) {
      this.micSamples.push(toInt16(mic));
      this.agentSamples.push(toInt16(agent));
    }
    if (this.peaks.length >= 2 * BATCH) {
      const message = { first: this.window, peaks: Float32Array.from(this.peaks) };
      this.window += this.peaks.length / 2;
      this.peaks = [];
      if (this.record) {
        message.mic = this.micSamples;
        message.agent = this.agentSamples;
        this.micSamples = [];
        this.agentSamples = [];
      }
      this.port.postMessage(message);
    }
    return true;
  }
}

registerProcessor('bridge-levels', BridgeLevels);
