from django import forms


class LinkForm(forms.Form):
    label = forms.CharField(
        label="Campaign label",
        max_length=80,
        required=False,
        help_text="Optional, up to 80 characters, to tell your links apart (for example “Spring newsletter”).",
    )

    def clean_label(self) -> str:
        return " ".join(self.cleaned_data["label"].split())
