// Copilot's additions to Chainlit's chat page (Chainlit 2.12 has no option for these):
// - names for its icon-only buttons, a page heading and landmarks (screen readers);
// - Enter confirms the rename-chat dialog (Chainlit's input is not in a form);
// - back to /admin after signing in when the admin pages sent you to sign in;
// - an "Admin pages" link in the user menu for users whose role may review;
// - a few lines on the first screen: what Copilot does, what it knows (GET /chat/welcome).
// Chainlit redraws freely, so a MutationObserver re-applies the names after each change.
"use strict";
(() => {
  const NAMES = [
    ["#sidebar-trigger-button", "Show or hide the chat list"],
    ["#search-chats-button", "Search chats (Ctrl+K)"],
    ["#new-chat-button", "New chat"],
    ["#upload-button", "Attach files"],
    ["#chat-submit", "Send message"],
    ["#user-nav-button", "Account menu"],
    ["button:has(> svg.lucide-copy)", "Copy"],
    ["button:has(> svg.lucide-thumbs-up)", "Helpful"],
    ["button:has(> svg.lucide-thumbs-down)", "Not helpful"],
    ["div.group.flex-row > button:has(> svg:only-child)", "Edit message"],  // beside your message
    ["button:has(> svg.lucide-ellipsis)", "Chat actions"],
  ];
  const NEXT = "copilot-after-sign-in";
  const root = document.querySelector('meta[property="og:root_path"]')?.content || "";

  function label() {
    for (const [selector, name] of NAMES) {
      for (const button of document.querySelectorAll(selector)) {
        if (!button.getAttribute("aria-label")) button.setAttribute("aria-label", name);
      }
    }
    const main = document.querySelector("main");
    if (main && !document.querySelector("h1")) {
      const heading = document.createElement("h1");
      heading.className = "sr-only";
      heading.textContent = document.title || "Copilot";
      main.prepend(heading);
    }
    const header = document.querySelector("#theme-toggle")?.closest("div.flex.items-center.justify-between, div.flex");
    if (header && !header.closest("header") && !header.getAttribute("role")) header.setAttribute("role", "banner");
    const sidebar = document.querySelector('[data-sidebar="sidebar"]');
    if (sidebar && !sidebar.getAttribute("role")) {
      sidebar.setAttribute("role", "navigation");
      sidebar.setAttribute("aria-label", "Chats");
    }
  }

  function adminLink() {
    const menu = document.querySelector('[role="menu"]');
    if (!menu || menu.querySelector("#admin-pages-link") || !window.copilotMayReview) return;
    const item = document.createElement("a");
    item.id = "admin-pages-link";
    item.href = "/admin";
    item.setAttribute("role", "menuitem");
    item.className = "copilot-menu-link";
    item.textContent = "Admin pages";
    menu.append(item);
  }

  function afterSignIn() {
    const here = window.location.pathname;
    const params = new URLSearchParams(window.location.search);
    const next = params.get("next") || "";
    // Only our own admin and files pages: never an address someone put in a link.
    if (here.endsWith("/login") && /^\/(admin|my\/files)(\/[\w\-\/]*)?$/.test(next)) {
      window.sessionStorage.setItem(NEXT, next);
    } else if (!here.endsWith("/login") && window.sessionStorage.getItem(NEXT)) {
      const target = window.sessionStorage.getItem(NEXT);
      window.sessionStorage.removeItem(NEXT);
      window.location.assign(target);
    }
  }

  let welcome = null;  // the lines, fetched once a user is signed in
  function welcomeLines() {
    const screen = document.querySelector("#welcome-screen");
    const starters = document.querySelector("#starters");
    if (!screen || !starters || !welcome || screen.querySelector("#copilot-welcome")) return;
    const block = document.createElement("div");
    block.id = "copilot-welcome";
    for (const line of welcome) {
      const p = document.createElement("p");
      p.textContent = line;  // text, never HTML
      block.append(p);
    }
    starters.before(block);
  }

  async function loadWelcome() {
    try {
      const response = await fetch(root + "/welcome", {credentials: "include"});
      if (response.ok) welcome = (await response.json()).lines;
      welcomeLines();
    } catch (error) {
      welcome = null;  // the first screen stays as Chainlit draws it
    }
  }

  async function mayReview() {
    try {
      const response = await fetch(root + "/user", {credentials: "include"});
      if (!response.ok) return;
      window.copilotMayReview = (await response.json())?.metadata?.may_review === true;
    } catch (error) {
      window.copilotMayReview = false;
    }
  }

  // Enter in the rename dialog's name field presses its Confirm button (the last one).
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.isComposing) return;
    const input = event.target;
    const dialog = input instanceof HTMLInputElement && input.id === "name" && input.closest('[role="dialog"]');
    if (!dialog) return;
    const buttons = dialog.querySelectorAll("button:not([aria-label='Close'])");
    const confirm = [...buttons].filter((b) => !b.querySelector("svg.lucide-x")).pop();
    if (confirm) {
      event.preventDefault();
      confirm.click();
    }
  });

  let signedInChecked = false;
  new MutationObserver(() => {
    label();
    afterSignIn();
    if (!signedInChecked && document.querySelector("#user-nav-button")) {
      signedInChecked = true;
      mayReview();
      loadWelcome();
    }
    adminLink();
    welcomeLines();
  }).observe(document.documentElement, {childList: true, subtree: true});
})();
