from django import forms


class ProjectForm(forms.Form):
    name = forms.CharField(label="Project name", max_length=100)
