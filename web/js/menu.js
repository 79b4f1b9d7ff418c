/**
 * A popup menu (context menus and the toolbar's Workflow menu): a list of items
 * `{label, action, disabled?, checked?, hint?}`, `{separator: true}` or `{label, items}` submenus.
 * Closes on a choice, Escape, or a click elsewhere. Arrow keys move between items (Home/End to the
 * ends); Right or Enter opens a submenu, Left goes back; closing gives the focus back to its opener.
 */

let open = null;
let opener = null;   // what had the focus when the menu opened

export function closeMenu() {
  if (!open) return;
  const hadFocus = open.contains(document.activeElement);
  open.remove();
  open = null;
  if (hadFocus && opener?.isConnected) opener.focus({ preventScroll: true });
  opener = null;
}

/** Arrow keys within a menu: each list (the menu, or an open submenu) cycles through its enabled items. */
function moveWithKeys(e) {
  const item = e.target.closest?.(".menu-item");
  if (!item) return;
  const items = [...item.parentElement.children].filter((el) => el.matches(".menu-item:not([disabled])"));
  const at = items.indexOf(item);
  const go = (el) => { if (el) { e.preventDefault(); e.stopPropagation(); el.focus({ preventScroll: true }); } };
  const sub = () => item.querySelector(":scope > .submenu > .menu-item:not([disabled])");
  if (e.key === "ArrowDown") go(items[(at + 1) % items.length]);
  else if (e.key === "ArrowUp") go(items[(at - 1 + items.length) % items.length]);
  else if (e.key === "Home") go(items[0]);
  else if (e.key === "End") go(items[items.length - 1]);
  else if ((e.key === "ArrowRight" || e.key === "Enter" || e.key === " ") && item.classList.contains("has-submenu")) go(sub());
  else if (e.key === "ArrowLeft") go(item.parentElement.closest(".menu-item.has-submenu"));
}

function build(items, className) {
  const list = document.createElement("div");
  list.className = className;
  list.setAttribute("role", "menu");
  for (const item of items) {
    if (item.separator) {
      list.append(Object.assign(document.createElement("div"), { className: "menu-separator" }));
      continue;
    }
    const entry = document.createElement("button");
    entry.type = "button";
    entry.className = "menu-item";
    entry.setAttribute("role", "menuitem");
    entry.disabled = Boolean(item.disabled);
    const label = Object.assign(document.createElement("span"), { textContent: (item.checked ? "✓ " : "") + item.label });
    entry.append(label);
    if (item.hint || item.items) {
      entry.append(Object.assign(document.createElement("span"), { className: "menu-hint", textContent: item.items ? "▸" : item.hint }));
    }
    if (item.items) {
      entry.classList.add("has-submenu");
      entry.setAttribute("aria-haspopup", "menu");
      const sub = build(item.items, "menu submenu");
      entry.append(sub);
    } else {
      entry.addEventListener("click", (e) => {
        e.stopPropagation();
        closeMenu();
        item.action?.();
      });
    }
    list.append(entry);
  }
  return list;
}

/** Show a menu at client coordinates (kept inside the window). */
export function showMenu(items, x, y) {
  closeMenu();
  opener = document.activeElement;
  const menu = build(items, "menu");
  menu.addEventListener("keydown", moveWithKeys);
  document.body.append(menu);
  const rect = menu.getBoundingClientRect();
  menu.style.left = `${Math.max(4, Math.min(x, window.innerWidth - rect.width - 4))}px`;
  menu.style.top = `${Math.max(4, Math.min(y, window.innerHeight - rect.height - 4))}px`;
  open = menu;
  menu.querySelector(".menu-item:not([disabled])")?.focus({ preventScroll: true });
  return menu;
}

document.addEventListener("pointerdown", (e) => { if (open && !open.contains(e.target)) closeMenu(); }, true);
document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeMenu(); });
window.addEventListener("blur", closeMenu);
