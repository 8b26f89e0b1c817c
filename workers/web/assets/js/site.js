// Marks the navigation link of the page being shown (the pages are static, so the browser does it).
(function () {
  "use strict";
  var here = window.location.pathname;
  document.querySelectorAll("nav a").forEach(function (link) {
    if (link.getAttribute("href") === here) {
      link.setAttribute("aria-current", "page");
    }
  });
})();
