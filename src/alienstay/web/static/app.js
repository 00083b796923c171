// Small enhancements over the server-rendered pages; every page works without them.

// Search: typing filters the word chips; Enter (or picking from the list) adds a known word.
function setUpSearch() {
  const input = document.getElementById("word-input");
  const hidden = document.getElementById("words");
  const form = document.getElementById("search-form");
  if (!input || !hidden || !form) return;
  const known = new Set([...document.querySelectorAll("#vocabulary option")].map((o) => o.value));
  const chips = [...document.querySelectorAll("#facets a.chip")];

  function chosen() {
    return hidden.value.split(",").map((w) => w.trim()).filter(Boolean);
  }
  function addWord(word) {
    const words = chosen();
    if (!words.includes(word)) words.push(word);
    hidden.value = words.join(",");
    input.value = "";
    input.removeAttribute("name");  // a word: no empty q= phrase in the URL
    form.submit();
  }
  input.addEventListener("input", (event) => {
    const typed = input.value.trim().toLowerCase();
    chips.forEach((chip) => {
      chip.classList.toggle("hidden", typed !== "" && !chip.dataset.word.toLowerCase().includes(typed));
    });
    // A pick from the suggestion list (not typing: "bed" must not fire while typing "bedroom").
    const picked = event.inputType === "insertReplacementText" || event.inputType === undefined;
    if (picked && known.has(input.value.trim())) addWord(input.value.trim());
  });
  form.addEventListener("submit", (event) => {
    const typed = input.value.trim();
    if (!typed || !known.has(typed)) return;  // the chosen words, or a phrase: searched by meaning (q=)
    event.preventDefault();
    addWord(typed);
  });
}

// Restyles: each slider wipes between the original (under) and the restyle (over).
function setUpSliders() {
  document.querySelectorAll(".compare").forEach((box) => {
    const range = box.querySelector('input[type="range"]');
    range.addEventListener("input", () => box.style.setProperty("--pos", `${range.value}%`));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpSearch();
  setUpSliders();
});
