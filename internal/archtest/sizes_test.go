package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// The size limits of docs/architecture.md. A function or file may exceed
// them only when its own comment says why, on a line starting "Long:".
const (
	maxFuncLines = 80
	maxFileLines = 500
)

// longReason says whether a comment group carries a "Long:" reason.
func longReason(g *ast.CommentGroup) bool {
	if g == nil {
		return false
	}
	for _, c := range g.List {
		if strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(c.Text, "//")), "Long:") {
			return true
		}
	}
	return false
}

// sourceFiles lists the module's non-test Go files outside hack/ and testdata/.
func sourceFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../..", p)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "node_modules":
				return filepath.SkipDir
			}
			if rel == "hack" {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestSizeLimits(t *testing.T) {
	fset := token.NewFileSet()
	files := sourceFiles(t)
	if len(files) < 50 {
		t.Fatalf("found only %d source files; is the walk rooted at the module?", len(files))
	}
	for _, p := range files {
		f, err := parser.ParseFile(fset, p, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel("../..", p)
		fileWhy := false
		for _, g := range f.Comments {
			fileWhy = fileWhy || (longReason(g) && fset.Position(g.Pos()).Line < fset.Position(f.Package).Line)
		}
		if n := fset.Position(f.End()).Line; n > maxFileLines && !fileWhy {
			t.Errorf("%s: %d lines (limit %d): split it, or say why above the package clause (// Long: ...)", rel, n, maxFileLines)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			n := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
			if n > maxFuncLines && !longReason(fn.Doc) {
				t.Errorf("%s:%d: func %s is %d lines (limit %d): split it, or say why in its doc (// Long: ...)",
					rel, fset.Position(fn.Pos()).Line, fn.Name.Name, n, maxFuncLines)
			}
		}
	}
}
