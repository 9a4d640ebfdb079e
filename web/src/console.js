// bridge console: talk to the agent from the browser, with the stock frontends' client logic.
//
// LiveKit's own client (livekit-client) joins the room; the agent, its state, the captions
// and the chat come from @livekit/components-core, the same helpers LiveKit's React hooks
// (useVoiceAssistant, useTranscriptions, useChat) are built on:
//   - the agent: the first remote participant of kind AGENT without lk.publish_on_behalf
//     (connectedParticipantsObserver), its state from lk.agent.state
//     (participantAttributesObserver), "connecting" until it is set;
//   - captions: lk.transcription text streams, merged by lk.segment_id (setupTextStream);
//   - chat: lk.chat text streams (setupChat).
// Figures are read from audio levels in an AudioWorklet (meter.js). With ?record=1 the page
// also keeps what the microphone sent and what the agent's track played, for tests.
//
// URL parameters preset a join: ?profile=NAME&override.voice=cedar&override.speed=1.2
// (an override the profile does not list is still sent: the server says why it refuses it).

import { ConnectionState, ParticipantKind, Room, RoomEvent, Track } from 'livekit-client';
import {
  DataTopic,
  ParticipantAgentAttributes,
  connectedParticipantsObserver,
  participantAttributesObserver,
  setupChat,
  setupTextStream,
} from '@livekit/components-core';
import { TurnMeter, WINDOW_MS } from './meter.js';
import './console.css';

const params = new URLSearchParams(location.search);
const RECORD = params.get('record') === '1';
const MAX_RECORD_S = 300;
const $ = (selector) => document.querySelector(selector);

let config = null;
let call = null;

function showError(message) {
  const box = $('#error');
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $('#error').hidden = true;
  $('#error').textContent = '';
}

function element(tag, attributes = {}, text = '') {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

// ------------------------------------------------------------------ profile and overrides

function presetOverrides() {
  const found = {};
  for (const [key, value] of params) {
    if (key.startsWith('override.')) found[key.slice('override.'.length)] = value;
  }
  return found;
}

function profileNamed(name) {
  return config.profiles.find((p) => p.name === name);
}

function renderProfiles() {
  const select = $('#profile');
  select.replaceChildren();
  for (const profile of config.profiles) {
    select.append(element('option', { value: profile.name }, profile.name));
  }
  const wanted = params.get('profile');
  if (wanted && !profileNamed(wanted)) {
    select.append(element('option', { value: wanted }, `${wanted} (not in the profiles file)`));
  }
  if (wanted) select.value = wanted;
  renderOverrides();
}

function overrideField(key, current) {
  const id = `override-${key}`;
  const label = element('label', { for: id }, key);
  let input;
  if (key === 'voice') {
    input = element('select', { id, 'data-override': key });
    input.append(element('option', { value: '' }, `profile's (${current})`));
    for (const voice of config.voices) input.append(element('option', { value: voice }, voice));
  } else if (key === 'speed') {
    input = element('input', {
      id,
      'data-override': key,
      type: 'number',
      min: '0.25',
      max: '1.5',
      step: '0.05',
      placeholder: String(current ?? 1.0),
    });
  } else if (key === 'instructions') {
    input = element('textarea', { id, 'data-override': key, rows: '3', placeholder: current ?? '' });
  } else {
    const shown = current === undefined ? '' : JSON.stringify(current);
    input = element('input', { id, 'data-override': key, placeholder: shown });
  }
  const row = element('div', { class: 'override' });
  row.append(label, input);
  return row;
}

function renderOverrides() {
  const box = $('#overrides');
  box.replaceChildren();
  const profile = profileNamed($('#profile').value);
  const preset = presetOverrides();
  if (profile) {
    if (!profile.overridable.length) {
      box.append(element('p', { class: 'note' }, 'This profile allows no overrides.'));
    }
    for (const key of profile.overridable) {
      box.append(overrideField(key, profile.values[key]));
    }
  }
  for (const [key, value] of Object.entries(preset)) {
    let input = box.querySelector(`[data-override="${key}"]`);
    if (!input) {
      box.append(overrideField(key, undefined));
      input = box.querySelector(`[data-override="${key}"]`);
      input.closest('.override').classList.add('not-allowed');
    }
    input.value = value;
  }
}

function overrideValue(key, raw) {
  if (key === 'speed') return Number(raw);
  if (key === 'voice' || key === 'instructions' || key === 'model') return raw;
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

function chosenOverrides() {
  const overrides = {};
  for (const input of document.querySelectorAll('[data-override]')) {
    if (input.value !== '') overrides[input.dataset.override] = overrideValue(input.dataset.override, input.value);
  }
  return overrides;
}

// ------------------------------------------------------------------ one call

// Each caption's lk.transcription_final, as one string (to notice a trailer's arrival).
function finalsOf(captions) {
  return captions.map((s) => s.streamInfo.attributes?.[ParticipantAgentAttributes.TranscriptionFinal]).join();
}

class Call {
  constructor(join, { microphone, processing }) {
    this.join = join;
    this.microphone = microphone;
    this.processing = processing;
    this.room = null; // made in start(), on this call's AudioContext
    this.subscriptions = [];
    this.agent = undefined;
    this.agentAttributes = {};
    this.state = 'disconnected';
    this.states = [];
    this.captions = [];
    this.chat = [];
    this.meter = new TurnMeter();
    this.recorded = { mic: [], agent: [], samples: 0 };
    this.agentElement = null;
    this.agentTimer = null;
    this.ended = false;
    this.roomEnded = false; // the console's server ended the room (hang-up)
  }

  async start() {
    $('#room').textContent = this.join.room;
    this.audio = new AudioContext({ sampleRate: 48000 });
    await this.audio.audioWorklet.addModule('/static/levels.js');
    this.levels = new AudioWorkletNode(this.audio, 'bridge-levels', {
      numberOfInputs: 2,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      channelCount: 1,
      channelCountMode: 'explicit',
      processorOptions: { record: RECORD },
    });
    this.levels.port.onmessage = (event) => this.onLevels(event.data);
    this.levels.connect(this.audio.destination); // silent output: keeps the worklet running

    // With the browser's audio processing off (headphones, measuring), the agent is played
    // through this AudioContext (livekit-client's webAudioMix): the levels and the recording
    // are then taken on exactly what is played. With it on, an audio element plays it, as
    // the browser's echo canceller expects, and the levels come from a tap of the same track
    // (Chromium's remote-track-to-WebAudio path may add a little delay of its own).
    const room = (this.room = new Room({
      adaptiveStream: false,
      dynacast: false,
      webAudioMix: this.processing ? false : { audioContext: this.audio },
    }));
    this.subscriptions.push(
      connectedParticipantsObserver(room).subscribe((participants) => this.findAgent(participants)),
      setupTextStream(room, DataTopic.TRANSCRIPTION).subscribe((streams) => {
        this.captions = streams;
        this.render();
      }),
    );
    this.chatter = setupChat(room);
    this.subscriptions.push(
      this.chatter.messageObservable.subscribe((messages) => {
        this.chat = messages;
        this.render();
      }),
    );
    room.on(RoomEvent.TrackSubscribed, (track, publication, participant) => {
      if (participant === this.agent && track.kind === Track.Kind.Audio) this.hearAgent(track);
    });
    room.on(RoomEvent.ConnectionStateChanged, () => this.updateState());
    room.on(RoomEvent.Disconnected, () => {
      this.updateState();
      if (!this.ended) this.finish('the room closed');
    });

    await room.connect(this.join.url, this.join.token);
    if (this.microphone) {
      try {
        await room.localParticipant.setMicrophoneEnabled(true, {
          echoCancellation: this.processing,
          noiseSuppression: this.processing,
          autoGainControl: this.processing,
        });
      } catch (error) {
        showError(`The microphone could not be opened (${error.message}); you can still type.`);
      }
    }
    const mic = room.localParticipant.getTrackPublication(Track.Source.Microphone)?.track;
    if (mic) {
      this.audio.createMediaStreamSource(new MediaStream([mic.mediaStreamTrack])).connect(this.levels, 0, 0);
    }
    this.updateState();
    this.agentTimer = setTimeout(() => this.agentLate(), this.join.agent_timeout_s * 1000);
  }

  // The agent as useVoiceAssistant finds it.
  findAgent(participants) {
    const agent = participants.find(
      (p) => p.kind === ParticipantKind.AGENT && !(ParticipantAgentAttributes.PublishOnBehalf in p.attributes),
    );
    if (agent === this.agent) return;
    this.agentAttributesSubscription?.unsubscribe();
    this.agent = agent;
    this.agentAttributes = {};
    $('#agent-identity').textContent = agent ? agent.identity : '';
    if (agent) {
      clearTimeout(this.agentTimer);
      this.agentAttributesSubscription = participantAttributesObserver(agent).subscribe(({ attributes }) => {
        this.agentAttributes = attributes;
        this.updateState();
      });
      for (const publication of agent.trackPublications.values()) {
        if (publication.track && publication.kind === Track.Kind.Audio) this.hearAgent(publication.track);
      }
    } else if (this.states.length && this.room.state === ConnectionState.Connected && !this.ended) {
      showError('The agent left the room.');
    }
    this.updateState();
  }

  // The agent's state as useVoiceAssistant derives it.
  updateState() {
    const connection = this.room.state;
    let state;
    if (connection === ConnectionState.Disconnected) state = 'disconnected';
    else if (
      connection === ConnectionState.Connecting ||
      !this.agent ||
      !this.agentAttributes[ParticipantAgentAttributes.AgentState]
    )
      state = 'connecting';
    else state = this.agentAttributes[ParticipantAgentAttributes.AgentState];
    if (state === this.state) return;
    this.state = state;
    this.states.push(state);
    const shown = $('#agent-state');
    shown.textContent = state;
    shown.dataset.state = state;
    $('#state-history').append(element('li', { 'data-state': state }, state));
  }

  hearAgent(track) {
    if (this.agentElement) return;
    // Plays it: an audio element, or (webAudioMix) a muted element and this.audio; either way
    // the element keeps Chromium delivering the track's audio into WebAudio for the levels.
    this.agentElement = track.attach();
    this.agentElement.id = 'agent-audio';
    document.body.append(this.agentElement);
    const source = this.audio.createMediaStreamSource(new MediaStream([track.mediaStreamTrack]));
    source.connect(this.levels, 0, 1);
  }

  async agentLate() {
    if (this.agent || this.ended) return;
    let reason;
    try {
      const reply = await fetch(`/api/rooms/${encodeURIComponent(this.join.room)}/diagnosis`);
      const answer = await reply.json();
      reason = answer.message ?? answer.error;
    } catch (error) {
      reason = `could not ask the console's server why (${error.message})`;
    }
    if (this.agent || this.ended) return;
    showError(`No agent joined within ${this.join.agent_timeout_s} s: ${reason}`);
  }

  onLevels({ first, peaks, mic, agent }) {
    // A caption's trailer (lk.transcription_final "true") lands on its stream's info after the
    // last chunk, when the helpers emit nothing more: look again with every batch of levels.
    if (finalsOf(this.captions) !== this.renderedFinals) this.render();
    for (let i = 0; i < peaks.length / 2; i++) {
      const changed = this.meter.push(first + i, peaks[2 * i], peaks[2 * i + 1]);
      if (changed.length) this.renderFigures();
    }
    if (first % 20 === 0) {
      // the level meters, five times a second: enough to watch, fewer repaints
      $('#mic-level').value = Math.max(...peaks.filter((_, i) => i % 2 === 0));
      $('#agent-level').value = Math.max(...peaks.filter((_, i) => i % 2 === 1));
    }
    if (mic && this.recorded.samples < MAX_RECORD_S * 48000) {
      this.recorded.mic.push(...mic);
      this.recorded.agent.push(...agent);
      this.recorded.samples += mic.length * 128;
    }
  }

  speakerOf(identity) {
    if (identity === this.room.localParticipant.identity) return 'user';
    if (this.agent && identity === this.agent.identity) return 'agent';
    return 'other';
  }

  render() {
    this.renderedFinals = finalsOf(this.captions);
    const entries = [];
    for (const stream of this.captions) {
      const attributes = stream.streamInfo.attributes ?? {};
      entries.push({
        at: stream.streamInfo.timestamp,
        kind: 'caption',
        speaker: this.speakerOf(stream.participantInfo.identity),
        text: stream.text,
        segment: attributes[ParticipantAgentAttributes.TranscriptionSegmentId] ?? '',
        final: attributes[ParticipantAgentAttributes.TranscriptionFinal] === 'true',
      });
    }
    for (const message of this.chat) {
      entries.push({
        at: message.timestamp,
        kind: 'chat',
        speaker: this.speakerOf(message.from?.identity),
        text: message.message,
        segment: message.id,
        final: true,
      });
    }
    entries.sort((a, b) => a.at - b.at);
    const list = $('#transcript');
    list.replaceChildren(
      ...entries.map((entry) => {
        const item = element('li', {
          class: `entry ${entry.kind} ${entry.speaker}`,
          'data-kind': entry.kind,
          'data-speaker': entry.speaker,
          'data-segment': entry.segment,
          'data-final': String(entry.final),
        });
        const who = { user: 'you', agent: 'agent', other: 'other' }[entry.speaker];
        item.append(
          element('span', { class: 'who' }, entry.kind === 'chat' ? `${who} (typed)` : who),
          element('span', { class: 'text' }, entry.text),
        );
        return item;
      }),
    );
    list.scrollTop = list.scrollHeight;
  }

  renderFigures() {
    const body = $('#figures tbody');
    body.replaceChildren(
      ...this.meter.turns.map((turn) => {
        const row = element('tr', { 'data-turn': String(turn.turn) });
        row.append(
          element('td', {}, String(turn.turn)),
          element(
            'td',
            { class: 'voice-to-voice' },
            turn.typed ? 'typed' : turn.voiceToVoiceMs === null ? '–' : String(turn.voiceToVoiceMs),
          ),
          element('td', { class: 'barge-in-stop' }, turn.bargeInStopMs === null ? '–' : String(turn.bargeInStopMs)),
        );
        return row;
      }),
    );
  }

  async send(text) {
    this.meter.typed();
    await this.chatter.send(text);
  }

  finish(reason) {
    this.ended = true;
    clearTimeout(this.agentTimer);
    for (const subscription of this.subscriptions) subscription.unsubscribe();
    this.agentAttributesSubscription?.unsubscribe();
    this.agentElement?.remove();
    setCalling(false);
    $('#call-status').textContent = `Call ended: ${reason}.`;
  }

  async hangUp() {
    this.ended = true;
    await this.room.disconnect();
    this.updateState();
    await this.audio.close();
    // The room ends for everyone, so the agent's call ends now, not after the server's
    // timeouts; if that fails, the call is still over for this page.
    let note = '';
    try {
      const reply = await fetch(endUrl(this.join.room), { method: 'POST' });
      this.roomEnded = reply.ok;
      if (!reply.ok) note = ` (the room was not ended: ${(await reply.json()).error ?? reply.status})`;
    } catch (error) {
      note = ` (the room was not ended: ${error.message})`;
    }
    this.finish(`you hung up${note}`);
  }
}

// ------------------------------------------------------------------ the page

function setCalling(calling) {
  $('#join').disabled = calling;
  $('#hangup').disabled = !calling;
  $('#profile').disabled = calling;
  $('#microphone').disabled = calling;
  $('#processing').disabled = calling;
  for (const input of document.querySelectorAll('[data-override]')) input.disabled = calling;
  $('#chat-input').disabled = !calling;
  $('#chat-send').disabled = !calling;
}

async function join(event) {
  event.preventDefault();
  clearError();
  if (call && !call.ended) return;
  const body = { profile: $('#profile').value, overrides: chosenOverrides() };
  $('#call-status').textContent = 'Joining…';
  let reply;
  let data;
  try {
    reply = await fetch('/api/join', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    data = await reply.json();
  } catch (error) {
    $('#call-status').textContent = '';
    showError(`The console's server did not answer (${error.message}).`);
    return;
  }
  if (!reply.ok) {
    $('#call-status').textContent = '';
    showError(data.error ?? `The console's server answered ${reply.status}.`);
    return;
  }
  for (const id of ['#state-history', '#transcript', '#figures tbody']) $(id).replaceChildren();
  setCalling(true);
  call = new Call(data, { microphone: $('#microphone').checked, processing: $('#processing').checked });
  $('#call-status').textContent = `In room ${data.room} as ${data.identity}.`;
  try {
    await call.start();
  } catch (error) {
    showError(`Could not join the room at ${data.url}: ${error.message}`);
    call.finish('the join failed');
  }
}

async function hangUp() {
  if (call && !call.ended) await call.hangUp();
}

// Leaving the page mid-call (the tab closed, a reload, another address) hangs up too: the
// room is ended with a beacon, which the browser still sends while the page goes away.
// Keyed on the room, not on the call: livekit-client disconnects on beforeunload, which
// comes first, so by pagehide the call may already have ended as "the room closed".
function leaving() {
  if (call && !call.roomEnded) navigator.sendBeacon(endUrl(call.join.room));
}

// Where the console's server ends a room it made (for everyone in it).
function endUrl(room) {
  return `/api/rooms/${encodeURIComponent(room)}/end`;
}

async function sendChat(event) {
  event.preventDefault();
  const input = $('#chat-input');
  const text = input.value.trim();
  if (!text || !call || call.ended) return;
  input.value = '';
  try {
    await call.send(text);
  } catch (error) {
    showError(`The message was not sent: ${error.message}`);
  }
}

function base64(chunks) {
  const samples = new Int16Array(chunks.length * 128);
  chunks.forEach((chunk, i) => samples.set(chunk, i * 128));
  const bytes = new Uint8Array(samples.buffer);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

// What tests (and curious developers, from the devtools console) can read.
window.bridgeConsole = {
  state: () => call?.state ?? 'disconnected',
  states: () => call?.states ?? [],
  turns: () => call?.meter.turns ?? [],
  windowMs: WINDOW_MS,
  // How this browser received the agent's track so far (WebRTC stats of its inbound-rtp):
  // the jitter buffer's mean delay and the audio it had to conceal (packets late or lost), ms.
  receiveStats: async () => {
    const found = { jitterBufferMs: 0, concealedMs: 0, packetsLost: 0 };
    for (const participant of call?.room.remoteParticipants.values() ?? []) {
      for (const publication of participant.trackPublications.values()) {
        const report = await publication.track?.getRTCStatsReport();
        report?.forEach((s) => {
          if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
          if (s.jitterBufferEmittedCount) {
            found.jitterBufferMs = (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount;
          }
          const rate = s.totalSamplesReceived / s.totalSamplesDuration || 48000;
          found.concealedMs = (1000 * (s.concealedSamples - s.silentConcealedSamples)) / rate;
          found.packetsLost = s.packetsLost;
        });
      }
    }
    return found;
  },
  recording: () =>
    call && RECORD
      ? { rate: 48000, mic: base64(call.recorded.mic), agent: base64(call.recorded.agent) }
      : null,
};

async function load() {
  $('#join-form').addEventListener('submit', join);
  $('#hangup').addEventListener('click', hangUp);
  $('#chat-form').addEventListener('submit', sendChat);
  $('#profile').addEventListener('change', renderOverrides);
  window.addEventListener('pagehide', leaving);
  try {
    const reply = await fetch('/api/config');
    config = await reply.json();
  } catch (error) {
    showError(`The console's server did not answer (${error.message}).`);
    return;
  }
  $('#server').textContent = `${config.livekit_url} · agent ${config.agent_name} · ${config.profiles_file}`;
  renderProfiles();
  $('#join').disabled = false;
  document.body.dataset.ready = 'true';
}

load();
