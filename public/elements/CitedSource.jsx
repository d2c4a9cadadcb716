// One cited source of an answer (copilot/web/sources.py builds its props): a chip under
// the answer, and the handler of the answer's "[n]" links to it. A click on either opens
// Chainlit's side panel with this source alone: its passage, and its PDF at the cited page.
// Chainlit opens the panel only when asked here: no source is a "side" element.
import { useEffect, useRef } from 'react';
import { useSetRecoilState } from 'recoil';
import { sideViewState } from '@chainlit/react-client';

const STYLE_ID = 'copilot-cited-source-style';
// Chips sit in a row that wraps, in the file's own case. At the default zoom (react-pdf's
// --user-unit 1) a PDF page fits the panel's width, where Chainlit draws it at its size and
// cuts it (its text layer, sized for that, is left out); zoomed, the page scrolls as in
// Chainlit. On a phone the panel takes the whole screen.
const STYLE = `
div:has(> .inline-custom > .cited-source) { flex-direction: row; flex-wrap: wrap; }
.inline-custom:has(> .cited-source) { flex-grow: 0; max-width: 100%; }
.cited-source {
  display: inline-block; max-width: 100%;
  padding: 0.2rem 0.6rem; border: 1px solid hsl(var(--border)); border-radius: 999px;
  background: hsl(var(--muted)); color: hsl(var(--foreground)); font-size: 0.8rem;
  line-height: 1.3; text-align: left; text-transform: none; cursor: pointer;
}
.cited-source:hover, .cited-source:focus-visible {
  border-color: hsl(var(--primary)); outline: none;
}
.cited-source .cited-number { font-weight: 600; color: hsl(var(--primary)); }
.cited-source .cited-file { font-weight: 500; overflow-wrap: anywhere; }
.cited-source .cited-place { color: hsl(var(--muted-foreground)); overflow-wrap: anywhere; }
.message-content a.element-link { text-transform: none; }
.side-pdf .w-fit:has(.react-pdf__Page[style*="--user-unit: 1;"]) { width: 100%; }
.side-pdf .react-pdf__Page[style*="--user-unit: 1;"] { min-width: 0 !important; max-width: 100%; }
.side-pdf .react-pdf__Page[style*="--user-unit: 1;"] canvas {
  max-width: 100% !important; height: auto !important;
}
.side-pdf .react-pdf__Page[style*="--user-unit: 1;"] :is(.textLayer, .annotationLayer) {
  display: none;
}
[role=dialog]:has(#side-view-content .side-text) { width: 100%; max-width: 100%; }
`;

function addStyleOnce() {
  if (document.getElementById(STYLE_ID)) return;
  const style = document.createElement('style');
  style.id = STYLE_ID;
  style.textContent = STYLE;
  document.head.appendChild(style);
}

function textUrl(text) {
  return 'data:text/plain;charset=utf-8,' + encodeURIComponent(text);
}

// What the side panel shows: Chainlit's own text and PDF elements, for this source only.
function panelElements(source) {
  const elements = [
    {
      id: `${source.key}-passage`,
      type: 'text',
      name: source.label,
      display: 'side',
      url: textUrl(`> ${source.snippet.replace(/\n/g, '\n> ')}`),
      mime: 'text/plain'
    }
  ];
  if (source.pdf) {
    elements.push({
      id: `${source.key}-pdf`,
      type: 'pdf',
      name: source.label,
      display: 'side',
      url: source.pdf,
      page: source.page || 1,
      mime: 'application/pdf'
    });
  }
  return elements;
}

export default function CitedSource() {
  const setSideView = useSetRecoilState(sideViewState);
  const chip = useRef(null);
  const open = () => setSideView({ title: props.label, elements: panelElements(props) });

  useEffect(addStyleOnce, []);

  // Chainlit links the answer's "[n]" to an element of that name: its click is ours.
  useEffect(() => {
    const answer = chip.current && chip.current.closest('.message-content');
    if (!answer) return undefined;
    const onClick = (event) => {
      const link = event.target.closest && event.target.closest('a.element-link');
      if (!link || link.textContent.trim() !== props.marker) return;
      event.preventDefault();
      event.stopPropagation(); // before Chainlit's handler, which opens the element page
      open();
    };
    answer.addEventListener('click', onClick, true);
    return () => answer.removeEventListener('click', onClick, true);
  }, [props.marker, props.key]);

  return (
    <button
      ref={chip}
      type="button"
      className="cited-source"
      title={`Show the source: ${props.label}`}
      onClick={open}
    >
      {/* The text reads as the label: "[1] Handbook.pdf, p. 3". */}
      <span className="cited-number">{props.marker}</span>{' '}
      <span className="cited-file">{props.file}</span>
      {props.place ? <span className="cited-place">, {props.place}</span> : null}
    </button>
  );
}
