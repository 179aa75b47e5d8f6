// The brief form: builds the POST /api/jobs body and shows the server's field errors next to their fields.
// The form is `novalidate`: the server is the one place ranges are checked, so the page never disagrees
// with it.

import { ApiProblem, createJob, listThemes, listVoices } from './api.js';
import { element } from './format.js';

export const RESOLUTIONS = {
  '16:9': [[640, 360], [1280, 720], [1920, 1080]],
  '9:16': [[360, 640], [720, 1280], [1080, 1920]],
  '1:1': [[360, 360], [720, 720], [1080, 1080]],
};
const DEFAULT_TIER = 1;

export class BriefForm {
  constructor(form, { onCreated }) {
    this.form = form;
    this.onCreated = onCreated;
    this.errorBox = form.querySelector('#form-error');
    this.range = form.querySelector('#duration-range');
    this.number = form.querySelector('#duration-number');
    this.resolution = form.querySelector('#resolution');
    this.voice = form.querySelector('#voice');
    this.submitButton = form.querySelector('#create-job');
    this.range.addEventListener('input', () => {
      this.number.value = this.range.value;
    });
    this.number.addEventListener('input', () => {
      const value = Number(this.number.value);
      if (Number.isFinite(value)) this.range.value = String(Math.min(Math.max(value, 3), 300));
    });
    this.keyPoints = form.querySelector('#key-points');
    this.keyPointsMissing = form.querySelector('#key-points-missing');
    // The writer only says what it is told: the page says so while no key point is given.
    this.keyPoints.addEventListener('input', () => this.#showKeyPointsHint());
    this.#showKeyPointsHint();
    for (const radio of form.querySelectorAll('input[name="aspect"]')) {
      radio.addEventListener('change', () => this.#fillResolutions());
    }
    this.#fillResolutions();
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  async loadVoices() {
    try {
      const { voices } = await listVoices();
      for (const voice of voices) {
        // The engine and quality tell the natural voice from the robotic ones at a glance.
        const option = element('option', '', `${voice.name} (${voice.key}): ${voice.engine}, ${voice.quality} quality`);
        option.value = voice.key;
        this.voice.append(option);
      }
    } catch (problem) {
      this.voice.setAttribute('aria-description', `Voices could not be listed: ${problem.message}`);
    }
  }

  async loadThemes() {
    // One choice per theme of the server, with its preview; the default theme comes first and is checked.
    const box = this.form.querySelector('#theme-choices');
    try {
      const { themes } = await listThemes();
      if (!themes.length) return;
      box.replaceChildren(
        ...themes.map((theme, index) => {
          const input = element('input');
          Object.assign(input, { type: 'radio', name: 'theme', value: theme.name, checked: index === 0 });
          const preview = element('img');
          Object.assign(preview, { src: theme.previewUrl, alt: '', width: 320, height: 180 });
          const label = element('label', 'theme-choice');
          label.dataset.theme = theme.name;
          label.append(
            preview,
            input,
            element('span', 'theme-title', theme.title),
            element('span', 'theme-description muted', theme.description),
          );
          return label;
        }),
      );
    } catch (problem) {
      box.setAttribute('aria-description', `Themes could not be listed: ${problem.message}`);
    }
  }

  get theme() {
    return this.form.querySelector('input[name="theme"]:checked')?.value || '';
  }

  get keyPointList() {
    return this.keyPoints.value.split('\n').map((line) => line.trim()).filter((line) => line !== '');
  }

  #showKeyPointsHint() {
    this.keyPointsMissing.hidden = this.keyPointList.length > 0;
  }

  get aspect() {
    return this.form.querySelector('input[name="aspect"]:checked')?.value || '16:9';
  }

  #fillResolutions() {
    const tier = this.resolution.selectedIndex >= 0 ? this.resolution.selectedIndex : DEFAULT_TIER;
    this.resolution.replaceChildren(
      ...RESOLUTIONS[this.aspect].map(([width, height]) => {
        const option = element('option', '', `${width} × ${height}`);
        option.value = `${width}x${height}`;
        return option;
      }),
    );
    this.resolution.selectedIndex = tier;
  }

  body() {
    const value = (name) => this.form.elements[name].value.trim();
    const [width, height] = this.resolution.value.split('x').map(Number);
    const duration = this.number.value.trim() === '' ? null : Number(this.number.value);
    return {
      brief: {
        topic: value('topic'),
        audience: value('audience'),
        tone: value('tone'),
        aspect: this.aspect,
        keyPoints: this.keyPointList,
      },
      plan: {
        targetDurationSeconds: duration,
        style: this.theme,
        motion: this.form.elements.motion.value,
        transition: this.form.elements.transition.value,
      },
      voice: { voiceName: this.voice.value },
      music: { mood: this.form.elements.music.value },
      render: { width, height, ...this.#captions() },
      reviewScript: this.form.elements.reviewScript.checked,
    };
  }

  #captions() {
    // "off", or a caption style: the API's `captions` switch and its `captionStyle`.
    const style = this.form.elements.captions.value;
    return style === 'off' ? { captions: false } : { captions: true, captionStyle: style };
  }

  async submit() {
    this.clearErrors();
    this.submitButton.disabled = true;
    try {
      const job = await createJob(this.body());
      this.onCreated(job);
    } catch (problem) {
      this.showProblem(problem);
    } finally {
      this.submitButton.disabled = false;
    }
  }

  clearErrors() {
    this.errorBox.hidden = true;
    this.errorBox.textContent = '';
    for (const node of this.form.querySelectorAll('.field-error[data-for]')) node.remove();
    for (const node of this.form.querySelectorAll('[aria-invalid]')) {
      node.removeAttribute('aria-invalid');
      node.removeAttribute('aria-errormessage');
    }
  }

  #fieldFor(path) {
    // "render.height" belongs to the same control as "render.width"; "script[0].narration" has none.
    const normalized = path
      .replace(/^render\.height$/, 'render.width')
      .replace(/^render\.captions$/, 'render.captionStyle')
      .replace(/^brief\.keyPoints\[\d+\]$/, 'brief.keyPoints');
    return this.form.querySelector(`[data-field="${CSS.escape(normalized)}"]`);
  }

  showProblem(problem) {
    const unplaced = [];
    const violations = problem instanceof ApiProblem ? problem.violations : [];
    for (const violation of violations) {
      const field = this.#fieldFor(violation.field);
      if (!field) {
        unplaced.push(`${violation.field}: ${violation.description}`);
        continue;
      }
      const id = `error-${violation.field.replace(/[^A-Za-z0-9]/g, '-')}`;
      let note = this.form.querySelector(`#${id}`);
      if (!note) {
        note = element('p', 'field-error');
        note.id = id;
        note.dataset.for = violation.field;
        note.setAttribute('role', 'alert');
        (field.closest('.field') || field).append(note);
      }
      note.textContent = violation.description;
      field.setAttribute('aria-invalid', 'true');
      field.setAttribute('aria-errormessage', id);
    }
    if (!violations.length || unplaced.length) {
      const lines = [problem.message, ...unplaced];
      if (problem.remediation) lines.push(problem.remediation);
      this.errorBox.textContent = lines.join(' — ');
      this.errorBox.hidden = false;
    }
    const first = this.form.querySelector('[aria-invalid="true"]');
    if (first && typeof first.focus === 'function') first.focus();
  }
}
