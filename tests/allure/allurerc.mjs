// Allure 3 configuration for the gate's results: the awesome report, with the categories the gate wrote
// into the results directory (Allure 3 reads categories from its configuration, Allure 2 from
// categories.json). The results directory: $DEPLOYGATE_ALLURE_RESULTS (default ./allure-results).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const results = process.env.DEPLOYGATE_ALLURE_RESULTS ?? "allure-results";
const file = join(results, "categories.json");
const categories = existsSync(file) ? JSON.parse(readFileSync(file, "utf-8")) : [];

export default {
  name: process.env.DEPLOYGATE_ALLURE_NAME ?? "deploygate",
  output: process.env.DEPLOYGATE_ALLURE_OUTPUT ?? "allure-report",
  categories,
  plugins: {
    awesome: {
      options: {
        singleFile: false,
        reportLanguage: "en",
        groupBy: ["parentSuite", "suite"],
      },
    },
  },
};
