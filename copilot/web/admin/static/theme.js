// The admin pages follow the chat's light/dark choice (Chainlit keeps it in localStorage
// under "vite-ui-theme": "light", "dark" or "system"); "system" or none leaves the choice
// to prefers-color-scheme (admin.css). Loaded in <head>, before the page is drawn.
"use strict";
{
  const chosen = window.localStorage.getItem("vite-ui-theme");
  if (chosen === "light" || chosen === "dark") document.documentElement.dataset.theme = chosen;
}
