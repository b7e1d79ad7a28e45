"""scikit-learn references for `npm run bench:predict`: the same churn split (customers.csv to train,
new-customers.csv held out), raw columns through the usual pipeline (impute, scale, one-hot; the id
column dropped; the date as days since 1970, year, month and weekday, as descent reads it).
Needs python3 with scikit-learn and pandas (Debian: apt-get install python3-sklearn python3-pandas).
Writes bench/predict-reference.json."""
import json, pathlib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

here = pathlib.Path(__file__).parent
data = here.parent / "examples" / "churn"

def load(name):
    df = pd.read_csv(data / name)
    d = pd.to_datetime(df.pop("signup_date"))
    df["days"] = (d - pd.Timestamp("1970-01-01")).dt.days
    df["year"], df["month"], df["weekday"] = d.dt.year, d.dt.month, (d.dt.weekday + 1) % 7
    y = (df.pop("churned") == "yes").astype(int)
    return df.drop(columns=["customer_id"]), y

x_train, y_train = load("customers.csv")
x_test, y_test = load("new-customers.csv")
numeric = ["monthly_spend", "tenure_months", "support_calls", "days", "year", "month", "weekday"]
categorical = ["plan", "region"]
prep = ColumnTransformer([
    ("num", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), numeric),
    ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), categorical),
])
models = {
    "logistic regression": LogisticRegression(max_iter=1000),
    "MLP (16 hidden)": MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=0),
    "gradient boosting": HistGradientBoostingClassifier(random_state=0),
}
out = {}
for name, model in models.items():
    pipe = make_pipeline(prep, model).fit(x_train, y_train)
    p = pipe.predict_proba(x_test)[:, 1]
    out[name] = {"accuracy": accuracy_score(y_test, p > 0.5), "rocAuc": roc_auc_score(y_test, p)}
    print(f"{name}: accuracy {out[name]['accuracy']:.4f}, ROC AUC {out[name]['rocAuc']:.4f}")
(here / "predict-reference.json").write_text(json.dumps(out, indent=2) + "\n")
