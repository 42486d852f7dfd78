from django import forms

from apertur.partners.models import ExpectedCustomers


class ApplicationForm(forms.Form):
    company_name = forms.CharField(
        label="Company or platform name",
        max_length=120,
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )
    website = forms.CharField(
        label="Website",
        max_length=300,
        widget=forms.URLInput(attrs={"placeholder": "https://", "autocomplete": "url"}),
    )
    use_case = forms.CharField(
        label="What will you build with Apertur?",
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Who your customers are and how they will use Apertur through your product.",
    )
    expected_customers = forms.ChoiceField(
        label="Expected number of customers",
        choices=[("", "Choose…"), *ExpectedCustomers.choices],
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 3}), required=False)
