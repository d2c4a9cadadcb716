// Copilot's additions to Chainlit's chat page (Chainlit 2.12 has no option for these):
// - names for its icon-only buttons, a page heading and landmarks (screen readers);
// - Enter confirms the rename-chat dialog (Chainlit's input is not in a form);
// - back to /admin after signing in when the admin pages sent you to sign in;
// - an "Admin pages" link in the user menu for users whose role may review;
// - a few lines on the first screen: what Copilot does, what it knows (GET /chat/welcome);
// - the chat's own address after its first answer, export links, a colleague's way to a
//   shared chat (the second part of this file).
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
    ["button:has(> svg.lucide-share2), button:has(> svg.lucide-share-2)", "Share this chat"],
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

// The chat's own address, and links to export it.
//
// Chainlit 2.12 moves a new chat to /thread/<id> after its first message only when its UI is
// served at "/" (ThreadHistory compares location.pathname with "/"); Copilot serves it under
// /chat, so the address stayed /chat and a reload opened an empty chat. The server tells the
// page the chat's id once its first message is handled (a window message, see
// copilot/web/chat.py); this puts the chat at <base>/thread/<id> and lets Chainlit's router
// follow, as it would at "/" (the page knows the chat's id by then, so the chat stays).
// On a chat's own address, it also offers to export the chat as Markdown and JSON (links in
// the header; on a phone, where the header is full, in the account menu), and
// when the chat is a colleague's (the server refuses to open it) but shared with this user,
// it moves to the shared view instead of leaving "Could not reach the server".
(function () {
  "use strict";
  var UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  var meta = document.querySelector('meta[property="og:root_path"]');
  var base = ((meta && meta.getAttribute("content")) || "").replace(/\/$/, "");

  function chatIdOfAddress() {
    var prefix = base + "/thread/";
    var path = window.location.pathname;
    var id = path.indexOf(prefix) === 0 ? path.slice(prefix.length).replace(/\/$/, "") : "";
    return UUID.test(id) ? id : null;
  }

  window.addEventListener("message", function (event) {
    if (event.source !== window || event.origin !== window.location.origin) return;
    var id = event.data && event.data.copilotChat;
    if (typeof id !== "string" || !UUID.test(id)) return;
    var here = window.location.pathname.replace(/\/$/, "");
    if (here !== base) return; // only a new chat moves; a resumed one is at its address
    window.history.replaceState(window.history.state, "", base + "/thread/" + id);
    window.dispatchEvent(new PopStateEvent("popstate", { state: window.history.state }));
  });

  var FORMS = [["Markdown", "md"], ["JSON", "json"]];
  // A phone's header has no room left: there the links are in the account menu.
  var PHONE = window.matchMedia("(max-width: 640px)");

  function exportLink(id, form) {
    var link = document.createElement("a");
    link.href = "/chats/" + id + "/export." + form[1];
    link.title = "Export this chat as " + form[0];
    link.setAttribute("aria-label", "Export this chat as " + form[0]);
    link.setAttribute("download", "");
    return link;
  }

  function exportLinks(id) {
    var links = document.createElement("span");
    links.id = "copilot-export";
    links.className = "text-sm text-muted-foreground";
    links.style.whiteSpace = "nowrap";
    links.dataset.chat = id;
    links.appendChild(document.createTextNode("Export "));
    FORMS.forEach(function (form, index) {
      if (index) links.appendChild(document.createTextNode(" · "));
      var link = exportLink(id, form);
      link.textContent = "." + form[1];
      link.className = "underline";
      links.appendChild(link);
    });
    return links;
  }

  function showExportLinks() {
    var id = chatIdOfAddress();
    var shown = document.getElementById("copilot-export");
    if (shown && (shown.dataset.chat !== id || PHONE.matches)) {
      shown.remove();
      shown = null;
    }
    var header = document.getElementById("header");
    if (id && !shown && header && !PHONE.matches) {
      var actions = header.lastElementChild || header;
      actions.insertBefore(exportLinks(id), actions.firstChild);
    }
    var menu = document.querySelector('[role="menu"]');
    if (id && PHONE.matches && menu && !menu.querySelector(".copilot-export-item")) {
      FORMS.forEach(function (form) {
        var item = exportLink(id, form);
        item.textContent = "Export this chat (" + form[0] + ")";
        item.setAttribute("role", "menuitem");
        item.className = "copilot-menu-link copilot-export-item";
        menu.append(item);
      });
    }
  }

  // The chat this page was opened at (Chainlit leaves it for a new chat when it is refused).
  var openedChat = chatIdOfAddress();

  function sharedViewInstead() {
    if (!openedChat || !document.getElementById("session-error")) return;
    var id = openedChat;
    openedChat = null;
    var options = { credentials: "same-origin" };
    fetch(base + "/project/thread/" + id, options).then(function (own) {
      if (own.status !== 401) return; // one's own chat (or none): the error is another one
      return fetch(base + "/project/share/" + id, options).then(function (shared) {
        if (shared.ok) window.location.replace(base + "/share/" + id);
      });
    });
  }

  var pending = false;
  new MutationObserver(function () {
    if (pending) return; // one look per frame, however much a streamed answer changes
    pending = true;
    window.requestAnimationFrame(function () {
      pending = false;
      showExportLinks();
      sharedViewInstead();
    });
  }).observe(document.documentElement, {
    childList: true,
    subtree: true,
  });
})();
