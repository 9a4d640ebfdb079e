// Per-turn figures read from audio levels, the way bridge/local/heard.py reads a call.
//
// The page feeds 10 ms windows: the peak level of the microphone (what the browser sends)
// and of the agent's track (what the browser hears), taken in the same AudioWorklet render
// quantum, so both are on one clock. A run of loud windows with gaps under 300 ms is an
// utterance (microphone, above -38 dBFS) or a reply (agent, above -61 dBFS: silence through
// Opus is near zero). Then, as heard in this browser:
//
// - voice-to-voice: the end of the caller's last utterance -> the start of the reply after it
//   (the caller's capture and encoder, the network both ways, the server, the bridge, the
//   model's turn detection and reply, this browser's jitter buffer);
// - barge-in stop: the caller starts talking over a reply -> that reply's last audio.
//
// A figure appears once it is known: voice-to-voice when the reply starts, the barge-in stop
// when the reply has been silent for 300 ms. A reply to a typed message (typed() before it)
// has no voice-to-voice: it is marked typed instead.

export const WINDOW_MS = 10;

export class TurnMeter {
  constructor({ micThreshold = 400 / 32768, agentThreshold = 30 / 32768, gapMs = 300 } = {}) {
    this.micThreshold = micThreshold;
    this.agentThreshold = agentThreshold;
    this.gap = Math.round(gapMs / WINDOW_MS);
    this.mic = null; // the current utterance: {start, last} (window indices)
    this.reply = null; // the current reply: {turn, start, last, bargeIn}
    this.lastMic = null; // last loud microphone window
    this.previousReplyStart = -Infinity;
    this.typedPending = false;
    this.turns = [];
  }

  // The caller typed a message: the next reply answers it.
  typed() {
    this.typedPending = true;
  }

  // One window: its index (from the start of the call) and both peaks (0..1).
  // Returns the turns whose figures changed.
  push(index, micPeak, agentPeak) {
    const changed = [];
    const micLoud = micPeak > this.micThreshold;
    const agentLoud = agentPeak > this.agentThreshold;
    if (this.reply && !agentLoud && index - this.reply.last > this.gap) {
      if (this.reply.bargeIn !== null) {
        const turn = this.turns[this.reply.turn - 1];
        turn.bargeInStopMs = (this.reply.last + 1 - this.reply.bargeIn) * WINDOW_MS;
        changed.push(turn);
      }
      this.reply = null;
    }
    if (agentLoud) {
      if (this.reply === null) {
        const turn = {
          turn: this.turns.length + 1,
          typed: this.typedPending,
          voiceToVoiceMs: null,
          bargeInStopMs: null,
        };
        this.typedPending = false;
        const answered =
          !turn.typed && this.lastMic !== null && this.lastMic >= this.previousReplyStart && !micLoud;
        if (answered) turn.voiceToVoiceMs = (index - (this.lastMic + 1)) * WINDOW_MS;
        this.turns.push(turn);
        this.reply = { turn: turn.turn, start: index, last: index, bargeIn: null };
        this.previousReplyStart = index;
        changed.push(turn);
      } else {
        this.reply.last = index;
      }
    }
    if (micLoud) {
      const starts = this.mic === null || index - this.mic.last > this.gap;
      if (starts) {
        this.mic = { start: index, last: index };
        if (this.reply && this.reply.start < index && this.reply.bargeIn === null) {
          this.reply.bargeIn = index;
        }
      } else {
        this.mic.last = index;
      }
      this.lastMic = index;
    }
    return changed;
  }
}
